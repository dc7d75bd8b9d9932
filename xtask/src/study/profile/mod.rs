//! `study/study.toml`: the raw serde layer that mirrors the file, resolved
//! into a typed [`Profile`] with every default filled in. Errors name
//! file:line:column and the key.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, Result};
use serde::Deserialize;
use toml::Spanned;

use crate::study::{
    arch::Arch,
    opt_rules::{Level, OptRules, Rule},
    origin::{origin, toml_error, Origin},
    toolchain::{Family, Linker, Toolchain},
};

mod extends;
mod os_rules;
use extends::extended;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    default_profile: Option<Spanned<String>>,
    optimization: Option<RawOptimization>,
    #[serde(default)]
    profile: BTreeMap<String, RawProfile>,
    /// Kconfig symbols renamed between kernel versions: the current name,
    /// and the older names a tree may still use.
    #[serde(default)]
    renamed: BTreeMap<String, Vec<String>>,
    /// Another kernel's rules (`[os.freebsd.optimization]`): its tree's
    /// paths, the same levels and ladder.
    #[serde(default)]
    os: BTreeMap<Spanned<String>, os_rules::RawOs>,
}

/// Option name → value, each with where it stands in the file.
type RawOptions = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// Architecture → its options, the name with where it stands.
type RawArchOptions = BTreeMap<Spanned<String>, RawOptions>;

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawProfile {
    /// Another profile of the same file this one starts from: its tables,
    /// with this one's options laid over them.
    extends: Option<Spanned<String>>,
    description: Option<String>,
    base: Option<Spanned<String>>,
    fragments: Option<Vec<Spanned<String>>>,
    fragment: Option<Spanned<String>>,
    options: Option<RawOptions>,
    optional: Option<Vec<Spanned<String>>>,
    optimization: Option<RawOptimization>,
    cc: Option<Spanned<String>>,
    ld: Option<Spanned<String>>,
    arch_ld: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    cc_options: Option<BTreeMap<Spanned<String>, RawOptions>>,
    arch_options: Option<RawArchOptions>,
    cc_arch_options: Option<BTreeMap<Spanned<String>, RawArchOptions>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOptimization {
    default: Option<Spanned<String>>,
    /// A path's level: `"O0"`, or `{ level = "O0", strict = true }` for a
    /// level the build must keep (a link or post-link failure then stops it
    /// with the fix, instead of moving the object up). Read as a value:
    /// toml's spans do not pass through an untagged enum.
    paths: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
}

/// A Kconfig value as the fragment writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KValue {
    Yes,
    No,
    Module,
    Number(i64),
    Hex(String),
    Str(String),
}

impl KValue {
    /// The text after `CONFIG_X=` in a `.config`; `n` for "is not set".
    pub fn config_text(&self) -> String {
        match self {
            KValue::Yes => "y".into(),
            KValue::No => "n".into(),
            KValue::Module => "m".into(),
            KValue::Number(n) => n.to_string(),
            KValue::Hex(h) => h.clone(),
            KValue::Str(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigOption {
    pub name: String,
    pub value: KValue,
    pub optional: bool,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// A make target that writes a whole `.config`: `defconfig`, `tinyconfig`.
    pub base: String,
    /// In-tree fragments (`kernel/configs/*.config`, `arch/*/configs/*.config`).
    pub fragments: Vec<String>,
    /// The file name of the generated fragment under `kernel/configs/`.
    pub fragment: String,
    pub options: Vec<ConfigOption>,
    pub rules: OptRules,
    /// The compiler family, unless `--cc` says otherwise.
    pub cc: Toolchain,
    /// The linker of a gcc build, unless `arch_ld` names one for its
    /// architecture or `--ld` says otherwise: see `linker_for`.
    pub ld: Linker,
    /// The linker of a gcc build on one architecture, over `ld`.
    pub arch_ld: BTreeMap<String, Linker>,
    /// More options when building with one compiler, over `options`.
    pub cc_options: BTreeMap<Family, Vec<ConfigOption>>,
    /// More options for one architecture (a file under study/arch/), over
    /// `options`.
    pub arch_options: BTreeMap<String, Vec<ConfigOption>>,
    /// More options for one compiler on one architecture, over both: what
    /// a compiler needs on one architecture only (IA32_EMULATION exists on
    /// x86 alone).
    pub cc_arch_options: BTreeMap<(Family, String), Vec<ConfigOption>>,
    /// Of the file's `[renamed]` table, the symbols this profile uses: the
    /// current name → the names older kernels give it.
    pub renamed: BTreeMap<String, Vec<String>>,
    /// The study.toml this profile came from.
    pub source: PathBuf,
}

impl Profile {
    /// The linker of a gcc build for `arch`, unless `--ld` says otherwise.
    pub fn linker_for(&self, arch: &str) -> Linker {
        self.arch_ld.get(arch).copied().unwrap_or(self.ld)
    }

    /// `options` with the ones for `cc`, then for `arch`, then for both,
    /// laid over them.
    pub fn for_target(self, cc: Toolchain, arch: &str) -> Profile {
        let for_cc = self.cc_options.get(&cc.family).cloned().unwrap_or_default();
        let for_arch = self.arch_options.get(arch).cloned().unwrap_or_default();
        let for_both = self
            .cc_arch_options
            .get(&(cc.family, arch.to_string()))
            .cloned()
            .unwrap_or_default();
        self.laid_over(for_cc)
            .laid_over(for_arch)
            .laid_over(for_both)
    }

    /// Every option the profile names, for any compiler and architecture.
    pub fn all_options(&self) -> impl Iterator<Item = &ConfigOption> {
        self.options
            .iter()
            .chain(self.cc_options.values().flatten())
            .chain(self.arch_options.values().flatten())
            .chain(self.cc_arch_options.values().flatten())
    }

    /// The profile for a tree that calls `new` by `old`.
    pub fn with_name(mut self, new: &str, old: &str) -> Profile {
        for option in self.options.iter_mut().filter(|o| o.name == new) {
            option.name = old.to_string();
        }
        self
    }

    fn laid_over(mut self, extra: Vec<ConfigOption>) -> Profile {
        for option in extra {
            self.options.retain(|o| o.name != option.name);
            self.options.push(option);
        }
        self
    }
}

pub struct Profiles {
    pub default: String,
    pub profiles: BTreeMap<String, Profile>,
    /// The rules of each other kernel (`freebsd`), for every profile.
    pub os_rules: BTreeMap<String, OptRules>,
    pub path: PathBuf,
}

impl Profiles {
    /// The profiles of the file at `path`, whose per-architecture keys
    /// must name architectures of `study_dir`'s `arch/`.
    pub fn load(path: &Path, study_dir: &Path) -> Result<Profiles> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read the profiles: {e}", path.display()))?;
        Profiles::parse(path, &text, &Arch::names(study_dir))
    }

    /// The profiles of `text`; `arches` are the architectures that
    /// `arch-ld`, `arch-options` and `cc-arch-options` may name.
    pub fn parse(path: &Path, text: &str, arches: &[String]) -> Result<Profiles> {
        let at = |span: std::ops::Range<usize>| origin(path, text, span.start);
        let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;

        let shared_rules = match raw.optimization {
            Some(opt) => Some(resolve_rules(opt, &at)?),
            None => None,
        };

        let mut profiles = BTreeMap::new();
        for (name, raw_profile) in &raw.profile {
            let raw_profile = extended(path, &raw.profile, name, raw_profile, &at)?;
            let mut profile =
                resolve_profile(path, name, raw_profile, shared_rules.as_ref(), arches, &at)?;
            profile.renamed = raw
                .renamed
                .iter()
                .filter(|(new, _)| profile.all_options().any(|o| &o.name == *new))
                .map(|(new, old)| (new.clone(), old.clone()))
                .collect();
            profiles.insert(name.clone(), profile);
        }
        if profiles.is_empty() {
            bail!(
                "{}: no [profile.NAME] table; add one, e.g. [profile.study]",
                path.display()
            );
        }
        let default = match raw.default_profile {
            Some(name) => {
                if !profiles.contains_key(name.get_ref()) {
                    bail!(
                        "{}: default-profile = \"{}\" names no profile; valid: {}",
                        at(name.span()),
                        name.get_ref(),
                        profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                    );
                }
                name.into_inner()
            }
            None => profiles
                .keys()
                .next()
                .cloned()
                .expect("profiles is not empty"),
        };
        let os_rules = os_rules::resolve(raw.os, &at)?;
        Ok(Profiles {
            default,
            profiles,
            os_rules,
            path: path.to_path_buf(),
        })
    }

    /// The named profile, or the default one.
    pub fn get(&self, name: Option<&str>) -> Result<&Profile> {
        let name = name.unwrap_or(&self.default);
        self.profiles.get(name).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown profile '{name}' (in {}); valid profiles: {}",
                self.path.display(),
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

fn resolve_profile(
    path: &Path,
    name: &str,
    raw: RawProfile,
    shared_rules: Option<&OptRules>,
    arches: &[String],
    at: &dyn Fn(std::ops::Range<usize>) -> Origin,
) -> Result<Profile> {
    let table = format!("[profile.{name}]");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!(
            "{}: {table}: a profile name is letters, digits, - and _",
            path.display()
        );
    }
    let base = raw.base.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: {table} has no `base`; add e.g. base = \"defconfig\"",
            path.display()
        )
    })?;
    let fragment = match raw.fragment {
        Some(f) => {
            if !f.get_ref().ends_with(".config") || f.get_ref().contains('/') {
                bail!(
                    "{}: fragment = \"{}\": give a file name ending in .config, e.g. \"{name}.config\"",
                    at(f.span()),
                    f.get_ref()
                );
            }
            f.into_inner()
        }
        None => format!("{name}.config"),
    };

    let optional: Vec<Spanned<String>> = raw.optional.unwrap_or_default();
    let mut options = resolve_options(raw.options.unwrap_or_default(), &optional, at)?;
    // Per-compiler options are per family: a version needs what its family does.
    let toolchain = |cc: &Spanned<String>, table: &str| -> Result<Family> {
        cc.get_ref().parse().map_err(|e| {
            anyhow::anyhow!(
                "{}: [profile.{name}.{table}.{}]: {e}",
                at(cc.span()),
                cc.get_ref()
            )
        })
    };
    let mut cc_options = BTreeMap::new();
    for (cc, table) in raw.cc_options.unwrap_or_default() {
        cc_options.insert(
            toolchain(&cc, "cc-options")?,
            resolve_options(table, &optional, at)?,
        );
    }
    // A misspelled architecture would configure without a word.
    let arch = |arch: Spanned<String>, table: &str| -> Result<String> {
        if !arches.contains(arch.get_ref()) {
            bail!(
                "{}: [profile.{name}.{table}]: no architecture \"{}\"; valid: {} (study/arch/)",
                at(arch.span()),
                arch.get_ref(),
                arches.join(", ")
            );
        }
        Ok(arch.into_inner())
    };
    let mut arch_options = BTreeMap::new();
    for (key, table) in raw.arch_options.unwrap_or_default() {
        arch_options.insert(
            arch(key, "arch-options")?,
            resolve_options(table, &optional, at)?,
        );
    }
    let mut cc_arch_options = BTreeMap::new();
    for (cc_name, by_arch) in raw.cc_arch_options.unwrap_or_default() {
        let cc = toolchain(&cc_name, "cc-arch-options")?;
        for (key, table) in by_arch {
            let table_name = format!("cc-arch-options.{}", cc_name.get_ref());
            cc_arch_options.insert(
                (cc, arch(key, &table_name)?),
                resolve_options(table, &optional, at)?,
            );
        }
    }
    for o in &optional {
        let bare = o.get_ref().strip_prefix("CONFIG_").unwrap_or(o.get_ref());
        let known = options
            .iter()
            .chain(cc_options.values().flatten())
            .chain(arch_options.values().flatten())
            .chain(cc_arch_options.values().flatten())
            .any(|opt| opt.name == bare);
        if !known {
            bail!(
                "{}: optional names `{}`, which is not in {table}'s options; add it there or remove it",
                at(o.span()),
                o.get_ref()
            );
        }
    }
    options.sort_by_key(|o| o.origin.line);

    let rules = match raw.optimization {
        Some(opt) => resolve_rules(opt, at)?,
        None => shared_rules.cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: {table} has no optimization rules; add [optimization] or [profile.{name}.optimization]",
                path.display()
            )
        })?,
    };

    let cc = match raw.cc {
        Some(cc) => parsed_at(&cc, at)?,
        None => Toolchain::GCC,
    };
    let ld = match raw.ld {
        Some(ld) => parsed_at(&ld, at)?,
        None => Linker::Bfd,
    };
    let arch_ld = raw
        .arch_ld
        .unwrap_or_default()
        .into_iter()
        .map(|(key, ld)| Ok((arch(key, "arch-ld")?, parsed_at(&ld, at)?)))
        .collect::<Result<BTreeMap<String, Linker>>>()?;
    Ok(Profile {
        name: name.to_string(),
        cc,
        ld,
        arch_ld,
        cc_options,
        arch_options,
        cc_arch_options,
        renamed: BTreeMap::new(),
        description: raw.description.unwrap_or_default(),
        base: base.into_inner(),
        fragments: raw
            .fragments
            .unwrap_or_default()
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        fragment,
        options,
        rules,
        source: path.to_path_buf(),
    })
}

/// A value of the file (a compiler, a linker), its error at its place.
fn parsed_at<T: std::str::FromStr<Err = String>>(
    value: &Spanned<String>,
    at: &dyn Fn(std::ops::Range<usize>) -> Origin,
) -> Result<T> {
    value
        .get_ref()
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: {e}", at(value.span())))
}

fn resolve_options(
    table: RawOptions,
    optional: &[Spanned<String>],
    at: &dyn Fn(std::ops::Range<usize>) -> Origin,
) -> Result<Vec<ConfigOption>> {
    let mut options = Vec::new();
    for (key, value) in table {
        let option_name = key.get_ref();
        let origin = at(key.span());
        let bare = option_name.strip_prefix("CONFIG_").unwrap_or(option_name);
        if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("{origin}: option `{option_name}`: a Kconfig symbol is letters, digits and _");
        }
        let value_origin = at(value.span());
        let value = kvalue(value.into_inner())
            .map_err(|why| anyhow::anyhow!("{value_origin}: option `{option_name}`: {why}"))?;
        let is_optional = optional
            .iter()
            .any(|o| o.get_ref() == option_name || o.get_ref() == bare);
        options.push(ConfigOption {
            name: bare.to_string(),
            value,
            optional: is_optional,
            origin,
        });
    }
    options.sort_by_key(|o| o.origin.line);
    Ok(options)
}

/// A layer of rules a build directory adds to its profile's
/// (`.study/follow.toml`, which `follow` writes): an
/// `[optimization.paths]` table, each rule at its line in that file. A
/// file rule is the most specific, so the layer's win.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    optimization: RawOptimization,
}

pub fn layer_rules(path: &Path, text: &str) -> Result<Vec<Rule>> {
    let raw: RawLayer = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
    let at = |span: std::ops::Range<usize>| origin(path, text, span.start);
    if raw.optimization.default.is_some() {
        bail!(
            "{}: a layer adds paths; the default is the profile's",
            path.display()
        );
    }
    Ok(resolve_rules(raw.optimization, &at)?.rules)
}

fn resolve_rules(
    raw: RawOptimization,
    at: &dyn Fn(std::ops::Range<usize>) -> Origin,
) -> Result<OptRules> {
    let level = |s: &Spanned<String>| -> Result<Level> {
        s.get_ref()
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", at(s.span())))
    };
    let default = match &raw.default {
        Some(d) => level(d)?,
        None => Level::Og,
    };
    let mut rules = Vec::new();
    for (path, lvl) in raw.paths.unwrap_or_default() {
        let origin = at(path.span());
        let clean = path.get_ref().trim_end_matches('/');
        let valid = !clean.is_empty()
            && !clean.starts_with('/')
            && !clean
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
            && clean
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./+".contains(c));
        if !valid {
            bail!("{origin}: path \"{}\": give a path relative to the kernel tree, e.g. \"net/core\" or \"net/socket.c\"", path.get_ref());
        }
        let here = || at(lvl.span());
        let (name, strict) = match lvl.get_ref() {
            toml::Value::String(name) => (name.clone(), false),
            toml::Value::Table(table) => {
                if let Some(key) = table.keys().find(|k| *k != "level" && *k != "strict") {
                    bail!(
                        "{}: unknown key `{key}`: a rule has `level` and `strict`",
                        here()
                    );
                }
                let Some(toml::Value::String(name)) = table.get("level") else {
                    bail!(
                        "{}: give the rule's `level`, e.g. {{ level = \"O0\", strict = true }}",
                        here()
                    );
                };
                let strict = match table.get("strict") {
                    None => false,
                    Some(toml::Value::Boolean(b)) => *b,
                    Some(_) => bail!("{}: `strict` is true or false", here()),
                };
                (name.clone(), strict)
            }
            _ => bail!(
                "{}: a level (\"O0\") or {{ level = \"O0\", strict = true }}",
                here()
            ),
        };
        let level = name
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", here()))?;
        rules.push(Rule {
            path: clean.to_string(),
            level,
            strict,
            origin,
        });
    }
    Ok(OptRules::new(default, rules))
}

fn kvalue(value: toml::Value) -> Result<KValue, String> {
    Ok(match value {
        toml::Value::Boolean(true) => KValue::Yes,
        toml::Value::Boolean(false) => KValue::No,
        toml::Value::Integer(n) => KValue::Number(n),
        toml::Value::String(s) if s == "m" => KValue::Module,
        toml::Value::String(s)
            if s.len() > 2
                && s.starts_with("0x")
                && s[2..].chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            KValue::Hex(s)
        }
        toml::Value::String(s) => KValue::Str(s),
        other => {
            return Err(format!(
            "a {} is not a Kconfig value; use true, false, \"m\", a number, \"0x..\" or a string",
            other.type_str()
        ))
        }
    })
}

#[cfg(test)]
mod tests;

//! Per-architecture Kbuild and QEMU facts, read from `study/arch/NAME.toml`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Arch {
    #[serde(skip)]
    pub name: String,
    pub make_arch: String,
    pub src_arch: String,
    pub image: String,
    pub image_target: String,
    /// The option with which QEMU boots `vmlinux` itself (x86's PVH entry
    /// point): then the edit loop skips building the compressed image.
    #[serde(default)]
    pub boots_vmlinux_with: Option<String>,
    pub qemu: Qemu,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Qemu {
    pub binary: String,
    pub package: String,
    pub machine: String,
    pub cpu_tcg: String,
    pub cpu_kvm: String,
    pub console: String,
    pub virtio_9p: String,
    /// Kernel command-line words under TCG only (the guest clock).
    #[serde(default)]
    pub cmdline_tcg: Vec<String>,
    /// The kernel parameter that takes the host's TSC rate in kHz under
    /// TCG, whose guest TSC ticks at the host's rate (`tsc_early_khz`).
    #[serde(default)]
    pub host_tsc_khz_param_tcg: Option<String>,
}

impl Arch {
    /// Loads `study/arch/NAME.toml`; an unknown name lists the valid ones.
    pub fn load(study_dir: &Path, name: &str) -> Result<Arch> {
        let dir = study_dir.join("arch");
        let path = dir.join(format!("{name}.toml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) => {
                let mut valid: Vec<String> = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| {
                        e.ok()?
                            .file_name()
                            .to_str()?
                            .strip_suffix(".toml")
                            .map(String::from)
                    })
                    .collect();
                valid.sort();
                anyhow::bail!(
                    "unknown architecture '{name}': no {}; valid: {}",
                    path.display(),
                    valid.join(", ")
                );
            }
        };
        let mut arch: Arch = toml::from_str(&text)
            .map_err(|e| crate::spec::origin::toml_error(&path, &text, &e))
            .context("architecture data")?;
        arch.name = name.to_string();
        Ok(arch)
    }

    pub fn host() -> &'static str {
        std::env::consts::ARCH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_x86_64_and_unknown_arch() {
        let study = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("study");
        let arch = Arch::load(&study, "x86_64").unwrap();
        assert_eq!(arch.image, "arch/x86/boot/bzImage");
        let err = Arch::load(&study, "vax").unwrap_err().to_string();
        assert!(err.starts_with("unknown architecture 'vax': no "), "{err}");
        assert!(err.ends_with("valid: x86_64"), "{err}");
    }
}

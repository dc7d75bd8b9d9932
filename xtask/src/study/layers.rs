//! Which layer of the stack a kernel function belongs to, by its source
//! file (study/layers.toml), for `trace --chain`.

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::{study::origin::toml_error, util::fsutil};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerFile {
    order: Vec<String>,
    layers: BTreeMap<String, String>,
}

/// Source path prefix → layer, longest prefix first, and the layers' order
/// from the top of the stack down.
pub struct Layers {
    prefixes: Vec<(String, String)>,
    order: Vec<String>,
}

impl Layers {
    /// `study_dir/layers.toml`.
    pub fn load(study_dir: &Path) -> Result<Layers> {
        let path = &study_dir.join("layers.toml");
        let text = fsutil::read_to_string(path)?;
        let file: LayerFile = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        if let Some((prefix, layer)) = file.layers.iter().find(|(_, l)| !file.order.contains(l)) {
            bail!(
                "{}: \"{prefix}\" = \"{layer}\": the layer is not in `order`",
                path.display()
            );
        }
        let mut prefixes: Vec<(String, String)> = file.layers.into_iter().collect();
        prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(Layers {
            prefixes,
            order: file.order,
        })
    }

    pub fn layer_of(&self, source: &str) -> Option<&str> {
        self.prefixes
            .iter()
            .find(|(prefix, _)| source.starts_with(prefix.as_str()))
            .map(|(_, layer)| layer.as_str())
    }

    pub fn rank(&self, layer: &str) -> usize {
        self.order.iter().position(|l| l == layer).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_by_longest_prefix() {
        let layers = Layers::load(&crate::study::shipped()).unwrap();
        assert_eq!(layers.layer_of("net/ipv4/tcp_output.c"), Some("transport"));
        assert_eq!(layers.layer_of("net/ipv4/ip_output.c"), Some("network"));
        assert_eq!(layers.layer_of("net/core/dev.c"), Some("device"));
        assert_eq!(layers.layer_of("drivers/net/loopback.c"), Some("driver"));
        assert_eq!(layers.layer_of("mm/slub.c"), None);
    }
}

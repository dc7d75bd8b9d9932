//! study.toml's `[os.NAME.optimization]`: the rules on another kernel's
//! tree (FreeBSD's `sys/netinet`), every profile's, read as the Linux rules
//! are and climbing the same ladder.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::Deserialize;
use toml::Spanned;

use super::{resolve_rules, RawOptimization};
use crate::study::{opt_rules::OptRules, origin::Origin, os::Os};

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawOs {
    optimization: RawOptimization,
}

/// Each named kernel's rules; a name that is no kernel this tool builds is
/// an error at its line.
pub(super) fn resolve(
    raw: BTreeMap<Spanned<String>, RawOs>,
    at: &dyn Fn(std::ops::Range<usize>) -> Origin,
) -> Result<BTreeMap<String, OptRules>> {
    let mut out = BTreeMap::new();
    for (name, os) in raw {
        if name.get_ref() != Os::FreeBsd.name() {
            bail!(
                "{}: [os.{}] names no kernel this tool builds; valid: {}",
                at(name.span()),
                name.get_ref(),
                Os::FreeBsd.name()
            );
        }
        out.insert(name.into_inner(), resolve_rules(os.optimization, at)?);
    }
    Ok(out)
}

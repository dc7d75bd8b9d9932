//! `extends = "NAME"`: a profile laid over the one it extends, before it
//! is resolved, so that a variant (`tiny-peer`) says only what it adds.

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Result};

use super::{RawOptions, RawProfile};
use crate::study::origin::Origin;

/// `raw` with what it extends laid under it: the parent's base,
/// fragments, optimization, compiler and linker unless it names its own,
/// and each options table with its entries over the parent's. A profile's
/// fragment file is its own.
pub(super) fn extended(
    path: &Path,
    all: &BTreeMap<String, RawProfile>,
    name: &str,
    raw: &RawProfile,
    at: &dyn Fn(std::ops::Range<usize>) -> Origin,
) -> Result<RawProfile> {
    let mut chain = vec![name.to_string()];
    let mut merged = raw.clone();
    while let Some(parent_name) = merged.extends.take() {
        let Some(parent) = all.get(parent_name.get_ref()) else {
            bail!(
                "{}: [profile.{name}] extends \"{}\", which is no profile of {}; valid: {}",
                at(parent_name.span()),
                parent_name.get_ref(),
                path.display(),
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        if chain.contains(parent_name.get_ref()) {
            bail!(
                "{}: [profile.{name}] extends itself through {}; break the cycle",
                at(parent_name.span()),
                chain.join(" → ")
            );
        }
        chain.push(parent_name.get_ref().clone());
        let parent = parent.clone();
        merged = RawProfile {
            extends: parent.extends,
            description: merged.description.or(parent.description),
            base: merged.base.or(parent.base),
            fragments: merged.fragments.or(parent.fragments),
            fragment: merged.fragment,
            options: Some(laid_over(parent.options, merged.options)),
            optional: Some(
                parent
                    .optional
                    .unwrap_or_default()
                    .into_iter()
                    .chain(merged.optional.unwrap_or_default())
                    .collect(),
            ),
            optimization: merged.optimization.or(parent.optimization),
            cc: merged.cc.or(parent.cc),
            ld: merged.ld.or(parent.ld),
            arch_ld: Some(
                parent
                    .arch_ld
                    .unwrap_or_default()
                    .into_iter()
                    .chain(merged.arch_ld.unwrap_or_default())
                    .collect(),
            ),
            cc_options: Some(tables_laid_over(parent.cc_options, merged.cc_options)),
            arch_options: Some(tables_laid_over(parent.arch_options, merged.arch_options)),
            cc_arch_options: Some({
                let mut out = parent.cc_arch_options.unwrap_or_default();
                for (cc, arches) in merged.cc_arch_options.unwrap_or_default() {
                    let under = out.remove(&cc);
                    out.insert(cc, tables_laid_over(under, Some(arches)));
                }
                out
            }),
        };
    }
    Ok(merged)
}

fn laid_over(under: Option<RawOptions>, over: Option<RawOptions>) -> RawOptions {
    let mut out = under.unwrap_or_default();
    for (k, v) in over.unwrap_or_default() {
        // The key's own span too: an error names the line that set it.
        out.remove(&k);
        out.insert(k, v);
    }
    out
}

fn tables_laid_over<K: Ord>(
    under: Option<BTreeMap<K, RawOptions>>,
    over: Option<BTreeMap<K, RawOptions>>,
) -> BTreeMap<K, RawOptions> {
    let mut out = under.unwrap_or_default();
    for (k, table) in over.unwrap_or_default() {
        let base = out.remove(&k);
        out.insert(k, laid_over(base, Some(table)));
    }
    out
}

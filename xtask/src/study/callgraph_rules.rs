//! What the static call graph leaves out and what it counts as indirect
//! (study/callgraph.toml): globs over function names.

use std::path::Path;

use anyhow::Result;
use serde::Deserialize;

use crate::{study::origin::toml_error, util::fsutil};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CallgraphRules {
    /// Calls left out of the graph (instrumentation).
    pub ignore: Vec<String>,
    /// Calls through these are indirect calls.
    pub indirect_thunks: Vec<String>,
}

impl CallgraphRules {
    pub fn load(study_dir: &Path) -> Result<CallgraphRules> {
        let path = study_dir.join("callgraph.toml");
        let text = fsutil::read_to_string(&path)?;
        toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))
    }

    pub fn ignores(&self, function: &str) -> bool {
        self.ignore.iter().any(|g| glob(g, function))
    }

    pub fn is_thunk(&self, function: &str) -> bool {
        self.indirect_thunks.iter().any(|g| glob(g, function))
    }
}

/// `*` for any run of characters; everything else literal.
pub fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob("__fentry__", "__fentry__"));
        assert!(!glob("__fentry__", "__fentry__x"));
        assert!(glob("__asan_*", "__asan_load8"));
        assert!(!glob("__asan_*", "x__asan_load8"));
        assert!(glob("__x86_indirect_thunk_*", "__x86_indirect_thunk_r11"));
        assert!(glob("*_thunk_*", "__x86_indirect_thunk_r11"));
        assert!(!glob("a*b*c", "ab"));
        assert!(glob("a*b*c", "aXbYc"));
    }

    #[test]
    fn the_shipped_rules_leave_out_ftraces_hook() {
        let rules = CallgraphRules::load(&crate::study::shipped()).unwrap();
        assert!(rules.ignores("__fentry__"));
        assert!(!rules.ignores("tcp_transmit_skb"));
        assert!(rules.is_thunk("__x86_indirect_thunk_rax"));
    }
}

//! Kbuild's `compile_commands.json` (`make compile_commands.json`), and
//! the same commands as clangd should read them: without the flags clang
//! does not take, which would stop its driver before it reads a line.

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// `text` (a compile_commands.json) with every flag `removes` names taken
/// out of each entry's `command` (shell words, as Kbuild writes them) or
/// `arguments`; every other field as it was.
pub fn without_flags(text: &str, removes: impl Fn(&str) -> bool) -> Result<String> {
    let mut entries: Vec<Value> =
        serde_json::from_str(text).context("not a JSON list of compile commands")?;
    for (n, entry) in entries.iter_mut().enumerate() {
        let Some(entry) = entry.as_object_mut() else {
            bail!("entry {n} is not an object");
        };
        if let Some(Value::String(command)) = entry.get("command") {
            let words = shell_words::split(command)
                .with_context(|| format!("entry {n}'s command is not shell words"))?;
            let kept: Vec<String> = words.into_iter().filter(|w| !removes(w)).collect();
            entry.insert("command".into(), Value::String(shell_words::join(kept)));
        }
        if let Some(Value::Array(arguments)) = entry.get_mut("arguments") {
            arguments.retain(|a| !a.as_str().is_some_and(&removes));
        }
    }
    let mut out = serde_json::to_string_pretty(&entries)?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_flags_go() {
        let text = r#"[
  {
    "command": "gcc -Wp,-MMD,net/ipv4/.tcp.o.d -mpreferred-stack-boundary=3 -O0 \"-DKBUILD_MODFILE=\\\"net/ipv4/tcp\\\"\" -c -o net/ipv4/tcp.o /k/net/ipv4/tcp.c",
    "directory": "/b",
    "file": "/k/net/ipv4/tcp.c"
  },
  {
    "arguments": ["gcc", "-fconserve-stack", "-c", "x.c"],
    "directory": "/b",
    "file": "/k/x.c"
  }
]"#;
        let gcc_only =
            |f: &str| f.starts_with("-mpreferred-stack-boundary=") || f == "-fconserve-stack";
        let out: Value = serde_json::from_str(&without_flags(text, gcc_only).unwrap()).unwrap();
        assert_eq!(
            out[0]["command"],
            "gcc -Wp,-MMD,net/ipv4/.tcp.o.d -O0 '-DKBUILD_MODFILE=\"net/ipv4/tcp\"' -c -o net/ipv4/tcp.o /k/net/ipv4/tcp.c"
        );
        assert_eq!(out[0]["directory"], "/b");
        assert_eq!(out[0]["file"], "/k/net/ipv4/tcp.c");
        assert_eq!(out[1]["arguments"], serde_json::json!(["gcc", "-c", "x.c"]));
    }

    #[test]
    fn a_file_that_is_no_list_of_commands_is_an_error() {
        assert!(without_flags("{}", |_| false).is_err());
        assert!(without_flags("[1]", |_| false).is_err());
    }
}

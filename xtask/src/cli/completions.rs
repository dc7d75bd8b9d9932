//! `cargo xtask completions SHELL`'s flags, and the clap command the
//! script is generated from: the whole command line under `cargo`, with
//! the profile names as `--profile`'s values.

use clap::{builder::PossibleValuesParser, Args, Command, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Args, Debug)]
pub struct Completions {
    /// The shell the script is for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The script for `shell`. Bash's completes `cargo xtask ...` and hands
/// any other `cargo ...` to the completion cargo had before (rustup's), so
/// that sourcing it takes nothing away.
pub fn script(shell: Shell, profiles: &[String]) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(profiles), "cargo", &mut out);
    let script = String::from_utf8(out).expect("clap_complete writes UTF-8");
    match shell {
        Shell::Bash => {
            let generated = script
                .split("\nif [[ \"${BASH_VERSINFO[0]}\"")
                .next()
                .expect("split yields one part")
                .replacen("_cargo() {", "_cargo_xtask() {", 1);
            format!("{generated}{BASH_DISPATCH}")
        }
        _ => script,
    }
}

/// `cargo xtask ...` to the generated function, anything else to cargo's
/// own completion: the one registered, else the one bash-completion would
/// load for cargo.
const BASH_DISPATCH: &str = r#"
if ! complete -p cargo >/dev/null 2>&1 && declare -F _completion_loader >/dev/null; then
    _completion_loader cargo
fi
_cargo_xtask_before=$(complete -p cargo 2>/dev/null | sed -n 's/.*-F \([^ ]*\).*/\1/p')
if [[ $_cargo_xtask_before == _cargo_xtask_or_cargo ]]; then
    _cargo_xtask_before=$_cargo_xtask_fallback
fi
_cargo_xtask_fallback=$_cargo_xtask_before
_cargo_xtask_or_cargo() {
    if [[ ${COMP_WORDS[1]} == xtask ]]; then
        _cargo_xtask "$@"
    elif [[ -n $_cargo_xtask_fallback ]]; then
        "$_cargo_xtask_fallback" "$@"
    fi
}
complete -F _cargo_xtask_or_cargo -o bashdefault -o default cargo
"#;

/// `cargo` with one subcommand, `xtask`, which is [`Cli`]: the shell
/// completes the words after `cargo`, and `xtask`'s own after it. Every
/// `--profile` offers `profiles` (read once, when the script is made).
fn command(profiles: &[String]) -> Command {
    let xtask = with_profiles(Cli::command().name("xtask"), profiles);
    Command::new("cargo")
        .bin_name("cargo")
        .disable_help_subcommand(true)
        .subcommand_required(true)
        .subcommand(xtask)
}

fn with_profiles(command: Command, profiles: &[String]) -> Command {
    let names = profiles.to_vec();
    let has_profile = command
        .get_arguments()
        .any(|a| a.get_id() == "profile" && a.get_long() == Some("profile"));
    let command = if has_profile && !names.is_empty() {
        command.mut_arg("profile", |a| {
            a.value_parser(PossibleValuesParser::new(names))
        })
    } else {
        command
    };
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    subcommands.into_iter().fold(command, |command, name| {
        command.mut_subcommand(name, |s| with_profiles(s, profiles))
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// What bash offers for the words `line` (the last one being completed),
    /// with the script sourced: the completion function itself, called as
    /// bash calls it.
    fn bash_offers(script: &str, line: &[&str]) -> Vec<String> {
        let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "{script}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\n\
             _cargo_xtask_or_cargo cargo '{cur}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            words = words.join(" "),
            cword = line.len() - 1,
            cur = line[line.len() - 1],
            prev = line[line.len() - 2],
        );
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    #[test]
    fn bash_accepts_the_script_and_completes_commands_and_profiles() {
        let profiles = ["alpha".to_string(), "beta".to_string()];
        let script = script(Shell::Bash, &profiles);
        let check = Command::new("bash")
            .args(["-n", "-c", &script])
            .output()
            .expect("bash runs");
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert_eq!(bash_offers(&script, &["cargo", "xtask", "bu"]), ["build"]);
        assert_eq!(
            bash_offers(&script, &["cargo", "xtask", "build", "--profile", ""]),
            profiles
        );
        // The flag is shared by the subcommands that take a profile.
        assert_eq!(
            bash_offers(&script, &["cargo", "xtask", "run", "-p", "b"]),
            ["beta"]
        );
    }

    #[test]
    fn every_shell_gets_a_script() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = script(shell, &["alpha".to_string()]);
            assert!(script.contains("opt-report"), "{shell}: no commands");
            assert!(script.contains("alpha"), "{shell}: no profile names");
        }
    }
}

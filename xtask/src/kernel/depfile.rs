//! Kbuild's `.cmd` files: what each object was built from. fixdep writes
//! them after each compile (scripts/basic/fixdep.c): the source, every
//! header it read, and `$(wildcard include/config/FOO)` for each option
//! the source mentions, which need not exist.

/// One input of an object, as the `.cmd` file names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Input {
    /// A file that existed when the object was built.
    File(String),
    /// A file that may appear later (an option's timestamp file).
    Wildcard(String),
}

/// The inputs of the object a `.cmd` file describes, its source first.
/// A `.cmd` file without a dependency list (a link, an archive) gives none.
/// `None`: not a `.cmd` file as Kbuild writes them (no command line,
/// `savedcmd_X := ` or before Linux 6.2 `cmd_X := `, or a dependency list
/// cut off), whose inputs nobody can tell.
pub fn inputs(text: &str) -> Option<Vec<Input>> {
    let command =
        |l: &str| (l.starts_with("savedcmd_") || l.starts_with("cmd_")) && l.contains(" := ");
    if !text.lines().any(command) {
        return None;
    }
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        if !in_deps {
            if let Some((_, source)) = line
                .strip_prefix("source_")
                .and_then(|l| l.split_once(" := "))
            {
                out.push(Input::File(source.trim().to_string()));
            }
            in_deps = line.starts_with("deps_") && line.ends_with(":= \\");
            continue;
        }
        let word = line.trim().trim_end_matches('\\').trim();
        if !word.is_empty() {
            out.push(match word.strip_prefix("$(wildcard ") {
                Some(rest) => Input::Wildcard(rest.trim_end_matches(')').to_string()),
                None => Input::File(word.to_string()),
            });
        }
        if !line.ends_with('\\') {
            in_deps = false;
        }
    }
    (!in_deps).then_some(out)
}

/// The command Kbuild ran to compile the object (`savedcmd_X := ...`), as
/// argv: make gave the line to a shell, so it is split as a shell would,
/// and it ends where a shell would start a second command (Kbuild's
/// objtool step, when there is one).
pub fn saved_command(text: &str) -> Option<Vec<String>> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("savedcmd_")?.split_once(" := "))
        .map(|(_, cmd)| cmd.trim_end())?;
    let words = shell_words::split(line).ok()?;
    let first: Vec<String> = words
        .into_iter()
        .take_while(|w| ![";", "&&", "||", "|"].contains(&w.as_str()))
        .collect();
    (!first.is_empty()).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_headers_and_wildcards_in_order() {
        let text = "savedcmd_net/ipv4/tcp.o := gcc -Wp,-MMD,net/ipv4/.tcp.o.d -c -o net/ipv4/tcp.o /k/net/ipv4/tcp.c\n\
                    \n\
                    source_net/ipv4/tcp.o := /k/net/ipv4/tcp.c\n\
                    \n\
                    deps_net/ipv4/tcp.o := \\\n  \
                    /k/include/linux/compiler-version.h \\\n    \
                    $(wildcard include/config/CC_VERSION_TEXT) \\\n  \
                    include/generated/autoconf.h \\\n\
                    \n\
                    net/ipv4/tcp.o: $(deps_net/ipv4/tcp.o)\n\
                    \n\
                    $(deps_net/ipv4/tcp.o):\n";
        assert_eq!(
            inputs(text).unwrap(),
            [
                Input::File("/k/net/ipv4/tcp.c".into()),
                Input::File("/k/include/linux/compiler-version.h".into()),
                Input::Wildcard("include/config/CC_VERSION_TEXT".into()),
                Input::File("include/generated/autoconf.h".into()),
            ]
        );
    }

    #[test]
    fn the_saved_command_is_split_as_a_shell_would() {
        let text = "savedcmd_net/ipv4/tcp.o := gcc -DKBUILD_MODFILE='\"net/ipv4/tcp\"' -c -o net/ipv4/tcp.o /k/net/ipv4/tcp.c  ; ./tools/objtool/objtool --orc net/ipv4/tcp.o\n\nsource_net/ipv4/tcp.o := /k/net/ipv4/tcp.c\n";
        assert_eq!(
            saved_command(text).unwrap(),
            [
                "gcc",
                "-DKBUILD_MODFILE=\"net/ipv4/tcp\"",
                "-c",
                "-o",
                "net/ipv4/tcp.o",
                "/k/net/ipv4/tcp.c"
            ]
        );
        assert_eq!(saved_command("source_x.o := x.c\n"), None);
    }

    #[test]
    fn a_link_has_no_dependency_list() {
        assert_eq!(
            inputs("savedcmd_vmlinux.a := ar cDPrST vmlinux.a init/built-in.a\n"),
            Some(Vec::new())
        );
    }

    #[test]
    fn a_garbled_or_cut_off_cmd_file_has_no_inputs_anyone_can_tell() {
        assert_eq!(inputs(""), None);
        assert_eq!(
            inputs("source_x.o := x.c\ndeps_x.o := \\\n  x.h \\\n"),
            None
        );
        let cut = "savedcmd_x.o := gcc -c x.c\nsource_x.o := x.c\ndeps_x.o := \\\n  x.h \\\n";
        assert_eq!(inputs(cut), None);
    }
}

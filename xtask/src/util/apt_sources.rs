//! The host's apt sources, read to fetch one more suite of the same
//! archive (bookworm-backports beside bookworm) into a private apt state,
//! so that `setup --install` never edits /etc/apt.

/// A one-line source for `suite` (`bookworm-backports`) from the archive
/// that serves its release (`bookworm`) in `files` (the texts of
/// sources.list and sources.list.d/*, one-line or deb822): the same
/// mirror, the same keyring. `None` when no source serves the release.
pub fn line_for_suite(suite: &str, files: &[String]) -> Option<String> {
    let release = suite.split('-').next()?;
    let (uri, signed_by) = files
        .iter()
        .find_map(|text| one_line(text, release).or_else(|| deb822(text, release)))?;
    let options = signed_by.map_or(String::new(), |k| format!("[signed-by={k}] "));
    Some(format!("deb {options}{uri} {suite} main"))
}

/// `deb [signed-by=K ...] URI SUITE COMPONENTS...`
fn one_line(text: &str, release: &str) -> Option<(String, Option<String>)> {
    text.lines().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let rest = line.strip_prefix("deb ")?.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(inner) => inner.split_once(']')?,
            None => ("", rest),
        };
        let mut words = rest.split_whitespace();
        let (uri, suite) = (words.next()?, words.next()?);
        let signed_by = options
            .split_whitespace()
            .find_map(|o| o.strip_prefix("signed-by="));
        (suite == release).then(|| (uri.to_string(), signed_by.map(str::to_string)))
    })
}

/// deb822 stanzas: `Types: deb`, `URIs:`, `Suites:`, `Signed-By:` (a path).
fn deb822(text: &str, release: &str) -> Option<(String, Option<String>)> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
            })
        };
        let binary = field("Types")?.split_whitespace().any(|t| t == "deb");
        let serves = field("Suites")?.split_whitespace().any(|s| s == release);
        let uri = field("URIs")?.split_whitespace().next()?;
        let key = field("Signed-By").filter(|k| k.starts_with('/'));
        (binary && serves).then(|| (uri.to_string(), key.map(str::to_string)))
    })
}

#[cfg(test)]
mod tests {
    use super::line_for_suite;

    #[test]
    fn the_release_archive_serves_its_backports() {
        let deb822 = "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n\
                      Suites: bookworm bookworm-updates\nComponents: main\n\
                      Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\n\
                      Suites: bookworm-security\nComponents: main\n";
        assert_eq!(
            line_for_suite("bookworm-backports", &[deb822.to_string()]).as_deref(),
            Some(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
                 http://mirror.example/debian bookworm-backports main"
            )
        );
        let one = "# deb http://old/ bookworm main\ndeb http://one.example/debian bookworm main\n";
        assert_eq!(
            line_for_suite("bookworm-backports", &["".into(), one.to_string()]).as_deref(),
            Some("deb http://one.example/debian bookworm-backports main")
        );
        // The security archive does not serve bookworm itself; a deb-src
        // line is not a binary source.
        let none = "deb-src http://src/ bookworm main\ndeb http://sec/ bookworm-security main\n";
        assert_eq!(
            line_for_suite("bookworm-backports", &[none.to_string()]),
            None
        );
    }
}

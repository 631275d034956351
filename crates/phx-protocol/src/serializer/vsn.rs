//! `vsn` negotiation (§1.3): the tiny subset of Elixir's `Version` that Phoenix uses.
//!
//! Phoenix parses `vsn` with `Version.parse/1` and picks the first serializer whose
//! requirement matches (`Version.match?/2`, default `allow_pre: true`): `~> 1.0.0` for V1,
//! `~> 2.0.0` for V2. `~> M.0.0` means `>= M.0.0 and < M.1.0-0`, so every `M.0.x` matches,
//! including pre-releases of a later patch (`2.0.1-rc.1`), but a pre-release of `M.0.0`
//! itself (`2.0.0-rc.1`) is *below* `M.0.0` and does not.

/// The parts of a version that matter for `~> M.0.0`; build metadata is ignored when
/// comparing, as in Elixir.
#[derive(Debug, PartialEq, Eq)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre_release: bool,
}

impl Version {
    /// `Version.parse/1`: `MAJOR.MINOR.PATCH[-PRE][+BUILD]`.
    ///
    /// Mirrors Elixir's parser step by step: split at the first `+` (build), then at the
    /// first `-` (pre-release), then the core at every `.` into exactly three numbers
    /// without leading zeros. Pre-release and build are non-empty dot-separated
    /// identifiers of `[0-9A-Za-z-]`; a purely numeric pre-release identifier may not
    /// have a leading zero (a build identifier may).
    fn parse(vsn: &str) -> Option<Self> {
        let (version_with_pre, build) = match vsn.split_once('+') {
            Some((v, b)) => (v, Some(b)),
            None => (vsn, None),
        };
        let (core, pre) = match version_with_pre.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (version_with_pre, None),
        };
        let mut parts = core.split('.');
        let major = number(parts.next()?)?;
        let minor = number(parts.next()?)?;
        let patch = number(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        if let Some(pre) = pre {
            let numeric_with_leading_zero =
                |id: &str| id.bytes().all(|b| b.is_ascii_digit()) && leading_zero(id);
            if !identifiers_valid(pre) || pre.split('.').any(numeric_with_leading_zero) {
                return None;
            }
        }
        if build.is_some_and(|build| !identifiers_valid(build)) {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
            pre_release: pre.is_some(),
        })
    }

    /// `Version.match?(self, "~> MAJOR.0.0")`.
    fn matches_tilde_major_0_0(&self, major: u64) -> bool {
        // Lower bound `>= M.0.0`: M.0.0-pre < M.0.0. Upper bound `< M.1.0-0`: any M.0.x.
        self.major == major && self.minor == 0 && !(self.patch == 0 && self.pre_release)
    }
}

/// A number part: ASCII digits only, no leading zero (`0` itself is fine).
fn number(part: &str) -> Option<u64> {
    // The digit check keeps out the `+` that `u64::from_str` accepts; the empty part
    // fails to parse below.
    if !part.bytes().all(|b| b.is_ascii_digit()) || leading_zero(part) {
        return None;
    }
    // Overflow only for numbers far beyond any real version: refusing them changes
    // nothing, since they would not match `~> 1.0.0`/`~> 2.0.0` either.
    part.parse().ok()
}

/// Elixir's `leading_zero?/1`: a `0` followed by at least one more character.
fn leading_zero(part: &str) -> bool {
    part.len() > 1 && part.starts_with('0')
}

/// Every dot-separated identifier is non-empty and made of `[0-9A-Za-z-]`.
fn identifiers_valid(s: &str) -> bool {
    s.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// The serializer major version (`1` or `2`) a `vsn` selects, or `None` when it is not a
/// version or matches neither requirement.
pub(super) fn select(vsn: &str) -> Option<u64> {
    let version = Version::parse(vsn)?;
    [1, 2]
        .into_iter()
        .find(|&major| version.matches_tilde_major_0_0(major))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_elixir_version_parse() {
        let v = |s| Version::parse(s);
        assert_eq!(
            v("2.0.1-rc.1+build.01"),
            Some(Version {
                major: 2,
                minor: 0,
                patch: 1,
                pre_release: true
            })
        );
        assert!(v("1.0.0-alpha-1").is_some(), "hyphens inside identifiers");
        assert!(v("1.0.0-rc--1").is_some());
        assert!(v("1.0.0+b-c").is_some(), "build may hold hyphens");
        assert!(v("1.0.0-x+y-z").is_some());
        assert!(v("0.0.0").is_some());
        assert!(v("1.0.0-0").is_some());
        for bad in [
            "",
            "abc",
            "1",
            "1.0",
            "1.0.0.0",
            "01.0.0",
            "1.00.0",
            "1.0.00",
            "1..0",
            "1.0.0-",
            "1.0.0+",
            "1.0.0-.",
            "1.0.0-a..b",
            "1.0.0-01",
            "1.0.0+a+b",
            "1.0.0-a_b",
            " 1.0.0",
            "1.0.0 ",
            "v1.0.0",
            "1.0.x",
            "1.0.-1",
            "1.0.+1",
            "1.0.0-é",
        ] {
            assert_eq!(v(bad), None, "{bad:?} is not a version");
        }
    }

    #[test]
    fn tilde_requirement_excludes_pre_releases_of_the_lower_bound() {
        assert_eq!(select("2.0.0"), Some(2));
        assert_eq!(select("2.0.9"), Some(2));
        assert_eq!(select("2.0.1-rc.1"), Some(2));
        assert_eq!(select("2.0.0+build"), Some(2));
        assert_eq!(select("2.0.0-rc.1"), None);
        assert_eq!(select("1.0.0-rc.1"), None);
        assert_eq!(select("1.0.0"), Some(1));
        assert_eq!(select("1.0.3+x"), Some(1));
        assert_eq!(select("1.1.0"), None);
        assert_eq!(select("2.1.0-rc"), None);
        assert_eq!(select("3.0.0"), None);
        assert_eq!(select("0.0.0"), None);
    }
}

//! Image reference rules (reference §5.6): environment tag suffix, Jetson rewrite, local builds.

/// Splits `repo[:tag][@digest]`; a `:` inside the registry host (port) is not a tag.
pub fn split(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag), digest),
        _ => (rest, None, digest),
    }
}

/// No tag and no digest and a non-production environment → `image:<env>`.
pub fn with_environment_tag(image: &str, environment: &str) -> String {
    let env = environment.trim().to_lowercase();
    let (_, tag, digest) = split(image);
    if tag.is_none() && digest.is_none() && !env.is_empty() && env != "production" {
        format!("{image}:{env}")
    } else {
        image.to_string()
    }
}

/// On Jetson a tagged, non-digest image whose tag does not start `jetson-` becomes
/// `repo:jetson-<tag>` (the original tag is the fallback when that pull fails).
pub fn jetson_variant(image: &str) -> Option<String> {
    let (repo, tag, digest) = split(image);
    match (tag, digest) {
        (Some(t), None) if !t.starts_with("jetson-") => Some(format!("{repo}:jetson-{t}")),
        _ => None,
    }
}

/// A plausible image reference: starts with a letter or digit, then only the characters a
/// reference can hold (`[A-Za-z0-9._/:@-]`), at most 512 of them. Anything else (a leading `-`
/// would be read by `docker create` as an option) is refused before it reaches argv.
pub fn valid_reference(image: &str) -> bool {
    image.len() <= 512
        && image
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | ':' | '@' | '-'))
}

/// Reference §6.2 step 4 (every role's images): no tag, a registry port only, or a moving tag name → pull every time.
pub fn is_mutable(image: &str) -> bool {
    let (_, tag, digest) = split(image);
    if digest.is_some() {
        return false;
    }
    match tag {
        None => true,
        Some(t) => {
            let head = t.split('-').next().unwrap_or("").to_lowercase();
            matches!(
                head.as_str(),
                "latest" | "dev" | "staging" | "nightly" | "edge" | "main" | "master"
            )
        }
    }
}

/// Local builds (`:local`, `:local-*`, `:*-local`) are never pulled when present.
pub fn is_local_build(image: &str) -> bool {
    match split(image) {
        (_, Some(t), None) => t == "local" || t.starts_with("local-") || t.ends_with("-local"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_that_could_become_options_are_refused() {
        for (i, ok) in [
            ("cyberwaveos/edge-ml-worker:latest", true),
            ("reg.local:5000/a/b@sha256:abc", true),
            ("-v/:/host", false),
            ("--privileged", false),
            ("a b", false),
            ("a\nb", false),
            ("", false),
        ] {
            assert_eq!(valid_reference(i), ok, "{i:?}");
        }
    }

    #[test]
    fn splitting() {
        assert_eq!(split("cyberwaveos/cam"), ("cyberwaveos/cam", None, None));
        assert_eq!(
            split("cyberwaveos/cam:dev"),
            ("cyberwaveos/cam", Some("dev"), None)
        );
        assert_eq!(
            split("registry:5000/cam"),
            ("registry:5000/cam", None, None)
        );
        assert_eq!(
            split("registry:5000/cam:1.2"),
            ("registry:5000/cam", Some("1.2"), None)
        );
        assert_eq!(split("cam@sha256:abc"), ("cam", None, Some("sha256:abc")));
    }

    #[test]
    fn environment_suffix() {
        assert_eq!(
            with_environment_tag("cyberwaveos/cam", "dev"),
            "cyberwaveos/cam:dev"
        );
        assert_eq!(
            with_environment_tag("cyberwaveos/cam", "Production"),
            "cyberwaveos/cam"
        );
        assert_eq!(
            with_environment_tag("cyberwaveos/cam:1.0", "dev"),
            "cyberwaveos/cam:1.0"
        );
        assert_eq!(
            with_environment_tag("cam@sha256:abc", "dev"),
            "cam@sha256:abc"
        );
        assert_eq!(
            with_environment_tag("reg:5000/cam", "staging"),
            "reg:5000/cam:staging"
        );
    }

    #[test]
    fn jetson_and_local() {
        assert_eq!(
            jetson_variant("cyberwaveos/cam:dev").as_deref(),
            Some("cyberwaveos/cam:jetson-dev")
        );
        assert_eq!(jetson_variant("cyberwaveos/cam:jetson-dev"), None);
        assert_eq!(jetson_variant("cyberwaveos/cam"), None);
        assert_eq!(jetson_variant("cam:1@sha256:abc"), None);
        for l in [
            "x:local",
            "x:local-dev",
            "x:feature-local",
            "reg:5000/x:local",
        ] {
            assert!(is_local_build(l), "{l}");
        }
        for l in ["x", "x:locally", "x:dev", "x:local@sha256:a"] {
            assert!(!is_local_build(l), "{l}");
        }
    }
}

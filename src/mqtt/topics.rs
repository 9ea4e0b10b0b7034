//! Topic names (reference §3.3). The prefix is concatenated with no separator.

pub fn edge_health(prefix: &str, twin: &str) -> String {
    format!("{prefix}cyberwave/twin/{twin}/edge_health")
}

pub fn driverlog(prefix: &str, twin: &str) -> String {
    format!("{prefix}cyberwave/twin/{twin}/driverlog")
}

pub fn twin_command(prefix: &str, twin: &str) -> String {
    format!("{prefix}cyberwave/twin/{twin}/command")
}

/// Note: no `cyberwave/` segment on the edge command topic.
pub fn edge_command(prefix: &str, edge_uuid: &str) -> String {
    format!("{prefix}edges/{edge_uuid}/command")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_has_no_separator() {
        assert_eq!(edge_health("dev", "t1"), "devcyberwave/twin/t1/edge_health");
        assert_eq!(edge_health("", "t1"), "cyberwave/twin/t1/edge_health");
        assert_eq!(edge_command("dev", "e1"), "devedges/e1/command");
        assert_eq!(driverlog("", "t"), "cyberwave/twin/t/driverlog");
        assert_eq!(twin_command("x/", "t"), "x/cyberwave/twin/t/command");
    }
}

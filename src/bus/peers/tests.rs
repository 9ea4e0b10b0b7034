use super::*;

const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 00000000:A1B2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 100 0 0 10 0
   2: 0200000A:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 100 0 0 10 0
   3: 0100007F:1F90 0100007F:C000 01 00000000:00000000 00:00000000 00000000     0        0 1004 1 0000000000000000 100 0 0 10 0
   4: garbage
";

const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:C350 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:C351 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:C352 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2003 1 0000000000000000 100 0 0 10 0
   3: 000080FE00000000FF00FC0201000000:C353 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2004 1 0000000000000000 100 0 0 10 0
";

#[test]
fn listening_sockets_and_whether_the_loopback_reaches_them() {
    let v4 = listening(TCP);
    let got: Vec<(u16, u64, bool)> = v4.iter().map(|s| (s.port, s.inode, s.local)).collect();
    // An established connection (st 01) and a malformed line are not listeners.
    assert_eq!(
        got,
        [(8080, 1001, true), (0xA1B2, 1002, true), (22, 1003, false)]
    );
    let v6 = listening(TCP6);
    let got: Vec<(u16, bool)> = v6.iter().map(|s| (s.port, s.local)).collect();
    assert_eq!(
        got,
        [(50000, true), (50001, true), (50002, true), (50003, false)]
    );
    assert!(listening("").is_empty());
}

fn hello(zid: &str, locators: &[&str]) -> Hello {
    Hello {
        zid: zid.into(),
        locators: locators.iter().map(|l| l.to_string()).collect(),
    }
}

fn listener(container: &str, port: u16, local: bool, host_network: bool) -> Listener {
    Listener {
        container: container.into(),
        port,
        local,
        host_network,
    }
}

#[test]
fn only_the_peers_our_containers_hold_are_linked() {
    let hellos = [
        // Our driver on the host network, listening on every address.
        hello("aa", &["tcp/192.0.2.2:41234", "tcp/[fd00::2]:41234"]),
        // A foreign peer on this host: no container of ours holds its port.
        hello("bb", &["tcp/192.0.2.2:45000"]),
        // Our worker in its own network namespace (a bridge network).
        hello("cc", &["tcp/127.0.0.1:7447", "tcp/172.17.0.3:7447"]),
        // A peer that announced no TCP endpoint.
        hello("dd", &["udp/192.0.2.2:41234"]),
        // Our driver bound to one address only: reached where it listens.
        hello("ee", &["tcp/192.0.2.2:43000#iface=eth0"]),
    ];
    let ours = [
        listener("driver", 41234, true, true),
        listener("worker", 7447, true, false),
        listener("pinned", 43000, false, true),
    ];
    let links = choose(&hellos, &ours);
    let got: Vec<(&str, &str)> = links
        .iter()
        .map(|(e, c)| (e.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("tcp/127.0.0.1:41234", "driver"),
            ("tcp/172.17.0.3:7447", "worker"),
            ("tcp/192.0.2.2:43000", "pinned"),
        ]
    );
    // No container of ours listening: nothing is linked, whoever answers.
    assert!(choose(&hellos, &[]).is_empty());
}

#[test]
fn a_process_belongs_to_the_container_its_cgroup_names() {
    let id = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100".to_string();
    let other = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_string();
    let ids: BTreeSet<String> = [id.clone(), other].into_iter().collect();
    let v1 = format!("12:memory:/docker/{id}\n11:pids:/docker/{id}\n");
    let v2 = format!("0::/system.slice/docker-{id}.scope\n");
    let podman = format!("0::/machine.slice/libpod-{id}.scope/container\n");
    for cgroup in [v1, v2, podman] {
        assert_eq!(container_of(&cgroup, &ids), Some(&id), "{cgroup}");
    }
    assert_eq!(container_of("0::/user.slice/session-1.scope\n", &ids), None);
    // A short (or empty) id never matches everything.
    let short: BTreeSet<String> = ["".to_string(), "abc".to_string()].into_iter().collect();
    assert_eq!(container_of("0::/abc\n", &short), None);
}

#[test]
fn the_looks_after_a_change_are_spread_and_end() {
    assert!(LOOKS_AFTER_CHANGE.windows(2).all(|w| w[0] < w[1]));
    assert!(LOOKS_AFTER_CHANGE[0] <= Duration::from_secs(2));
    assert!(*LOOKS_AFTER_CHANGE.last().unwrap() < LOOK_EVERY);
}

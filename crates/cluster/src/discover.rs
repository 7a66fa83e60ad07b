//! Finding a cluster's nodes on the LAN by mDNS (DNS-SD service `_minibar._tcp`, what macOS
//! calls Bonjour), instead of writing a hostfile: each node announces the address its rank
//! will listen on, with the cluster's name and size, and waits until it has seen that many
//! nodes of that cluster; every node then sorts the same addresses the same way, so all
//! agree on the hostfile and each finds its own rank.
//!
//! Invariant: the ranks are the nodes sorted by (not the lead, address), so the lead (the
//! node started with `--lead`, where jobs are submitted) is rank 0 and every node computes
//! the same order from the same set.
//!
//! Trust: an announcement is a claim from the network. Its address is parsed, never
//! resolved; a node whose announced size differs is refused; and a stranger that joins
//! under the same cluster name still has to pass the handshake (same build, same model
//! bytes) before any token. Name clusters apart when several share a LAN.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

use crate::{
    error::{ClusterError, Result},
    hostfile::Hostfile,
};

/// The DNS-SD service type Minibar's nodes announce.
pub const SERVICE: &str = "_minibar._tcp.local.";
/// The standard mDNS port.
pub const MDNS_PORT: u16 = 5353;

/// What a node announces and looks for.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The cluster's name: nodes announcing another are ignored.
    pub cluster: String,
    /// How many nodes the cluster has, this one included.
    pub nodes: usize,
    /// This node is rank 0 (where `cluster chat` submits jobs); at most one node is.
    pub lead: bool,
    /// The address this node's rank will listen on (its LAN address and a free port).
    pub me: SocketAddr,
    /// How long to wait for the others.
    pub timeout: Duration,
    /// The mDNS port ([`MDNS_PORT`]; tests use another, away from the system's responder).
    pub mdns_port: u16,
}

/// The cluster as found: the hostfile every node computes, and this node's rank. It keeps
/// answering for this node while it lives, so that a node that starts later still finds it.
pub struct Found {
    /// Every rank's address, rank 0 first.
    pub hosts: Hostfile,
    /// This node's rank.
    pub rank: usize,
    daemon: ServiceDaemon,
}

impl Drop for Found {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

fn mdns(e: mdns_sd::Error) -> ClusterError {
    ClusterError::Discovery(format!("mDNS: {e}"))
}

/// This machine's address on the LAN: the one its packets to the mDNS group leave from.
pub fn lan_ip() -> Result<IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("224.0.0.251:5353").map(|()| s))
        .and_then(|s| s.local_addr())
        .map_err(|e| ClusterError::Discovery(format!("finding this machine's LAN address: {e}")))?;
    Ok(probe.ip())
}

/// Announces this node and waits, at most `d.timeout`, until `d.nodes` nodes of `d.cluster`
/// are seen; returns the hostfile they all compute and this node's rank.
pub fn discover(d: &Discovery) -> Result<Found> {
    if d.nodes < 2 {
        return Err(ClusterError::Discovery(
            "a cluster needs at least 2 nodes".into(),
        ));
    }
    let daemon = ServiceDaemon::new_with_port(d.mdns_port).map_err(mdns)?;
    let instance = format!("minibar-{}", d.me).replace([':', '.', '[', ']'], "-");
    let props = [
        ("cluster", d.cluster.clone()),
        ("nodes", d.nodes.to_string()),
        ("lead", if d.lead { "1" } else { "0" }.to_string()),
        ("ring", d.me.to_string()),
    ];
    let info = ServiceInfo::new(
        SERVICE,
        &instance,
        &format!("{instance}.local."),
        d.me.ip(),
        d.me.port(),
        &props[..],
    )
    .map_err(mdns)?;
    let own = info.get_fullname().to_owned();
    let events = daemon.browse(SERVICE).map_err(mdns)?;
    daemon.register(info).map_err(mdns)?;

    let mut seen: BTreeMap<String, (bool, SocketAddr)> = BTreeMap::new();
    seen.insert(own.clone(), (d.lead, d.me));
    let deadline = Instant::now() + d.timeout;
    while seen.len() < d.nodes {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match events.recv_timeout(left) {
            Ok(e) => e,
            Err(_) => {
                let found: Vec<String> = seen.values().map(|(_, a)| a.to_string()).collect();
                let _ = daemon.shutdown();
                return Err(ClusterError::Discovery(format!(
                    "found {} of the {} nodes of cluster `{}` on the LAN in {} s ({}): start `minibar cluster up --discover {}` on the others, with the same --cluster, and allow minibar through the firewall",
                    seen.len(),
                    d.nodes,
                    d.cluster,
                    d.timeout.as_secs(),
                    found.join(", "),
                    d.nodes
                )));
            }
        };
        match event {
            ServiceEvent::ServiceResolved(s) => {
                if s.get_property_val_str("cluster") != Some(d.cluster.as_str()) {
                    continue;
                }
                let Some(ring) = s
                    .get_property_val_str("ring")
                    .and_then(|r| r.parse::<SocketAddr>().ok())
                else {
                    continue;
                };
                let nodes = s.get_property_val_str("nodes").unwrap_or("?");
                if nodes != d.nodes.to_string() {
                    let _ = daemon.shutdown();
                    return Err(ClusterError::Discovery(format!(
                        "the node at {ring} expects {nodes} nodes in cluster `{}`, this one {}",
                        d.cluster, d.nodes
                    )));
                }
                let lead = s.get_property_val_str("lead") == Some("1");
                seen.insert(s.fullname.clone(), (lead, ring));
            }
            ServiceEvent::ServiceRemoved(_, name) if name != own => {
                seen.remove(&name);
            }
            _ => {}
        }
    }
    let mut order: Vec<(bool, SocketAddr)> = seen.into_values().collect();
    if order.iter().filter(|(lead, _)| *lead).count() > 1 {
        let _ = daemon.shutdown();
        return Err(ClusterError::Discovery(format!(
            "more than one node of cluster `{}` was started with --lead",
            d.cluster
        )));
    }
    order.sort_by_key(|&(lead, addr)| (!lead, addr));
    order.dedup_by_key(|(_, addr)| *addr);
    let rank = order
        .iter()
        .position(|(_, a)| *a == d.me)
        .expect("this node is among those seen");
    Ok(Found {
        hosts: Hostfile {
            nodes: order.into_iter().map(|(_, a)| vec![a]).collect(),
        },
        rank,
        daemon,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three nodes on this machine (loopback, on a test port) find each other and agree.
    #[test]
    fn nodes_on_the_lan_agree_on_the_ranks_and_the_lead_is_rank_0() {
        let port = 20000 + (std::process::id() % 20000) as u16;
        let cluster = format!("test-{}", std::process::id());
        let node = |me: &str, lead: bool| Discovery {
            cluster: cluster.clone(),
            nodes: 3,
            lead,
            me: me.parse().unwrap(),
            timeout: Duration::from_secs(20),
            mdns_port: port,
        };
        let nodes = [
            node("127.0.0.1:41001", false),
            node("127.0.0.1:41002", false),
            node("127.0.0.1:41003", true),
        ];
        let found: Vec<Found> = std::thread::scope(|s| {
            let handles: Vec<_> = nodes.iter().map(|d| s.spawn(|| discover(d))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        let expected: Vec<Vec<SocketAddr>> =
            ["127.0.0.1:41003", "127.0.0.1:41001", "127.0.0.1:41002"]
                .iter()
                .map(|a| vec![a.parse().unwrap()])
                .collect();
        for (f, rank) in found.iter().zip([1, 2, 0]) {
            assert_eq!(f.hosts.nodes, expected);
            assert_eq!(f.rank, rank);
        }
        drop(found);
        // Alone, a node names what it found and what to do.
        let alone = Discovery {
            cluster: format!("{cluster}-alone"),
            nodes: 2,
            timeout: Duration::from_millis(500),
            ..nodes[0].clone()
        };
        let e = discover(&alone).err().unwrap().to_string();
        assert!(e.contains("found 1 of the 2 nodes"), "{e}");
    }
}

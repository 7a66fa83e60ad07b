//! The ring's hostfile, in MLX's own format (what `mlx.launch` writes and what
//! `MLX_HOSTFILE` points to): a JSON list with, for each rank in order, the `ip:port`
//! addresses it listens on. Addresses are IPs, not names: MLX does not resolve host names.

use std::{
    net::{IpAddr, SocketAddr, TcpListener},
    path::Path,
};

use crate::error::{ClusterError, Result};

/// Every rank's listening addresses, rank 0 first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostfile {
    /// One entry per rank: the addresses its neighbours connect to.
    pub nodes: Vec<Vec<SocketAddr>>,
}

impl Hostfile {
    /// `ranks` ranks on this machine's loopback, each on a port the OS reports free now.
    pub fn loopback(ranks: usize) -> std::io::Result<Hostfile> {
        // Hold every listener until all ports are chosen, so no two ranks get the same one.
        let listeners = (0..ranks)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()?;
        let nodes = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| vec![a]))
            .collect::<std::io::Result<_>>()?;
        Ok(Hostfile { nodes })
    }

    /// Parses MLX's JSON: `[["ip:port", ...], ...]`. A plain `["ip:port", ...]` is accepted
    /// too, one address per rank.
    pub fn parse(text: &str, path: &Path) -> Result<Hostfile> {
        let bad = |reason: String| ClusterError::Hostfile {
            path: path.to_owned(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let list = value
            .as_array()
            .ok_or_else(|| bad("expected a JSON list with one entry per rank".into()))?;
        let mut nodes = Vec::new();
        for (rank, entry) in list.iter().enumerate() {
            let addrs: Vec<&serde_json::Value> = match entry {
                serde_json::Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let mut node = Vec::new();
            for a in addrs {
                let s = a.as_str().ok_or_else(|| {
                    bad(format!("rank {rank}: addresses are \"ip:port\" strings"))
                })?;
                let addr: SocketAddr = s.parse().map_err(|_| {
                    bad(format!(
                        "rank {rank}: `{s}` is not an ip:port address (MLX's ring needs IPs, not host names)"
                    ))
                })?;
                node.push(addr);
            }
            if node.is_empty() {
                return Err(bad(format!("rank {rank} has no address")));
            }
            nodes.push(node);
        }
        let hosts = Hostfile { nodes };
        hosts.check().map_err(bad)?;
        Ok(hosts)
    }

    /// Reads and parses a hostfile.
    pub fn read(path: &Path) -> Result<Hostfile> {
        let text = std::fs::read_to_string(path).map_err(|e| ClusterError::Hostfile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Hostfile::parse(&text, path)
    }

    /// The JSON MLX reads.
    pub fn to_json(&self) -> String {
        let nodes: Vec<Vec<String>> = self
            .nodes
            .iter()
            .map(|n| n.iter().map(SocketAddr::to_string).collect())
            .collect();
        serde_json::Value::from(nodes).to_string()
    }

    /// Writes the JSON MLX reads to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()).map_err(|e| ClusterError::Io {
            what: format!("writing the hostfile {}", path.display()),
            source: e,
        })
    }

    /// How many ranks.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no ranks.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The rank's name in messages: its first address.
    pub fn name(&self, rank: usize) -> String {
        match self.nodes.get(rank).and_then(|n| n.first()) {
            Some(a) => format!("rank {rank} ({a})"),
            None => format!("rank {rank}"),
        }
    }

    /// The machine a rank runs on (its first address's IP).
    pub fn machine(&self, rank: usize) -> Option<IpAddr> {
        self.nodes.get(rank).and_then(|n| n.first()).map(|a| a.ip())
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.nodes.len() < 2 {
            return Err("a cluster needs at least two ranks".into());
        }
        let per = self.nodes[0].len();
        if let Some(r) = self.nodes.iter().position(|n| n.len() != per) {
            return Err(format!(
                "rank {r} has {} addresses but rank 0 has {per}: MLX's ring needs as many connections on each side",
                self.nodes[r].len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (r, n) in self.nodes.iter().enumerate() {
            for a in n {
                if !seen.insert(*a) {
                    return Err(format!("rank {r}: {a} is listed twice"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlx_format_round_trips() {
        let p = Path::new("hosts.json");
        let h = Hostfile::parse(r#"[["10.0.0.1:5000"], ["10.0.0.2:5000"]]"#, p).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.name(1), "rank 1 (10.0.0.2:5000)");
        assert_eq!(Hostfile::parse(&h.to_json(), p).unwrap(), h);
        let flat = Hostfile::parse(r#"["10.0.0.1:5000", "10.0.0.2:5000"]"#, p).unwrap();
        assert_eq!(flat, h);
    }

    #[test]
    fn names_duplicates_and_lopsided_rings_are_refused() {
        let p = Path::new("hosts.json");
        let e = Hostfile::parse(r#"[["mac-mini.local:5000"], ["10.0.0.2:5000"]]"#, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not host names"), "{e}");
        let e = Hostfile::parse(r#"[["10.0.0.1:5000"], ["10.0.0.1:5000"]]"#, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
        let e = Hostfile::parse(
            r#"[["10.0.0.1:5000", "10.0.0.1:5001"], ["10.0.0.2:5000"]]"#,
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("as many connections"), "{e}");
        assert!(Hostfile::parse(r#"[["10.0.0.1:5000"]]"#, p).is_err());
        assert!(Hostfile::parse("{", p).is_err());
    }

    #[test]
    fn loopback_ports_are_distinct() {
        let h = Hostfile::loopback(3).unwrap();
        let ports: std::collections::HashSet<u16> = h.nodes.iter().map(|n| n[0].port()).collect();
        assert_eq!(ports.len(), 3);
        assert!(h.nodes.iter().all(|n| n[0].ip().is_loopback()));
    }
}

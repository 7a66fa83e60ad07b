//! Who holds a port another server already listens on, so that "address in use" can name it
//! (Ollama listens on 11434 too). Best effort and cheap: Linux reads /proc, macOS asks
//! `lsof`; anything unknown is `None`, and the error still says which port.

/// The program listening on TCP `port` (`name (pid N)`), when it can be found.
pub(crate) fn holder(port: u16) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        linux::holder(port)
    }
    #[cfg(target_os = "macos")]
    {
        let out = std::process::Command::new("lsof")
            .args(["-nP", &format!("-iTCP:{port}"), "-sTCP:LISTEN", "-Fpc"])
            .output()
            .ok()?;
        parse_lsof(&String::from_utf8_lossy(&out.stdout))
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = port;
        None
    }
}

/// `lsof -F pc` output: `p<pid>` then `c<command>` lines.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn parse_lsof(text: &str) -> Option<String> {
    let pid = text.lines().find_map(|l| l.strip_prefix('p'))?;
    let name = text.lines().find_map(|l| l.strip_prefix('c'))?;
    Some(format!("{name} (pid {pid})"))
}

#[cfg(target_os = "linux")]
mod linux {
    /// The socket inodes listening on `port`, from /proc/net/tcp and tcp6.
    pub(super) fn listening_inodes(tables: &[String], port: u16) -> Vec<u64> {
        const LISTEN: &str = "0A";
        tables
            .iter()
            .flat_map(|t| t.lines().skip(1))
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let local_port = f.get(1)?.rsplit(':').next()?;
                let listening = *f.get(3)? == LISTEN;
                (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                    .then(|| f.get(9)?.parse().ok())
                    .flatten()
            })
            .collect()
    }

    pub(super) fn holder(port: u16) -> Option<String> {
        let tables: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect();
        let inodes = listening_inodes(&tables, port);
        if inodes.is_empty() {
            return None;
        }
        let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
        // Processes of other users are not readable: then the holder stays unknown.
        for proc_dir in std::fs::read_dir("/proc").ok()?.flatten() {
            let pid = proc_dir.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
                continue;
            };
            let holds = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|l| wanted.iter().any(|w| l.as_os_str() == w.as_str()))
            });
            if holds {
                let name = std::fs::read_to_string(proc_dir.path().join("comm"))
                    .map(|c| c.trim().to_owned())
                    .unwrap_or_else(|_| "a program".into());
                return Some(format!("{name} (pid {pid})"));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsof_output_names_the_holder() {
        assert_eq!(
            parse_lsof("p4242\ncollama\nf7\n").as_deref(),
            Some("ollama (pid 4242)")
        );
        assert_eq!(parse_lsof(""), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_found_holding_its_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = holder(port).expect("our own socket is readable");
        assert!(
            found.contains(&format!("pid {}", std::process::id())),
            "{found}"
        );
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1\n   1: 0100007F:2CAB 00000000:0000 01 00000000:00000000 00:00000000 00000000  1000        0 999 1\n";
        assert_eq!(
            linux::listening_inodes(&[table.to_owned()], 11434),
            vec![12345]
        );
        assert!(linux::listening_inodes(&[table.to_owned()], 11435).is_empty());
    }
}

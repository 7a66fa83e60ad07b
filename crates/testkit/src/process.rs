//! Child processes a test starts: ended with the test, however it ends.

use std::{
    path::Path,
    process::Child,
    time::{Duration, Instant},
};

/// A child process killed and reaped when dropped, so a failing test leaves nothing running
/// (a `minibar cluster up` takes its ranks with it: their lifeline closes).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl KillOnDrop {
    /// Waits until something accepts connections on the Unix socket `socket` (a cluster's
    /// control socket); panics if the process ends first or nothing answers within 2 minutes.
    pub fn wait_for_socket(&mut self, socket: &Path) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            assert!(
                self.0.try_wait().unwrap().is_none(),
                "the process ended before {} answered",
                socket.display()
            );
            assert!(
                Instant::now() < deadline,
                "nothing answered on {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

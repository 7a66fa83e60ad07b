//! Stop strings: cut generated text at the first stop string, and never show a caller text that
//! might turn out to be the start of one.

/// What one call to [`StopMatcher::push`] releases.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopOutput {
    /// Text that is safe to show now.
    pub text: String,
    /// A stop string was found; `text` ends right before it and generation should stop.
    pub stopped: bool,
}

/// Scans streamed text for stop strings.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet released, because it may begin a stop string.
    held: String,
    stopped: bool,
}

impl StopMatcher {
    /// A matcher for these stop strings (empty strings are ignored).
    pub fn new<S: Into<String>>(stops: impl IntoIterator<Item = S>) -> Self {
        let stops = stops
            .into_iter()
            .map(Into::into)
            .filter(|s: &String| !s.is_empty())
            .collect();
        StopMatcher {
            stops,
            held: String::new(),
            stopped: false,
        }
    }

    /// Feeds newly decoded text; returns what may be shown and whether to stop.
    pub fn push(&mut self, text: &str) -> StopOutput {
        if self.stopped {
            return StopOutput {
                text: String::new(),
                stopped: true,
            };
        }
        self.held.push_str(text);
        // The earliest complete stop string wins.
        let found = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(pos) = found {
            self.stopped = true;
            let out = self.held[..pos].to_string();
            self.held.clear();
            return StopOutput {
                text: out,
                stopped: true,
            };
        }
        let keep = self.partial_suffix_start();
        let out = self.held[..keep].to_string();
        self.held.drain(..keep);
        StopOutput {
            text: out,
            stopped: false,
        }
    }

    /// Releases text still held back, at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Whether a stop string has been seen.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Byte index where the longest suffix of `held` that is a proper prefix of a stop begins.
    fn partial_suffix_start(&self) -> usize {
        self.held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops
                    .iter()
                    .any(|s| s.len() > tail.len() && s.starts_with(tail))
            })
            .unwrap_or(self.held.len())
    }
}

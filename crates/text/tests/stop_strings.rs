//! Stop strings over every way a text can arrive in pieces.

use minibar_text::StopMatcher;

/// Feeds `pieces`; returns (all text released, whether it stopped).
fn run(stops: &[&str], pieces: &[&str]) -> (String, bool, Vec<String>) {
    let mut m = StopMatcher::new(stops.iter().copied());
    let mut out = String::new();
    let mut released = Vec::new();
    for p in pieces {
        let o = m.push(p);
        released.push(o.text.clone());
        out.push_str(&o.text);
        if o.stopped {
            return (out, true, released);
        }
    }
    out.push_str(&m.finish());
    (out, false, released)
}

/// All splits of `text` into at most three pieces at char boundaries.
fn chunkings(text: &str) -> Vec<Vec<&str>> {
    let cuts: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let mut out = Vec::new();
    for &a in &cuts {
        for &b in cuts.iter().filter(|&&b| b >= a) {
            out.push(vec![&text[..a], &text[a..b], &text[b..]]);
        }
    }
    out
}

#[test]
fn any_chunking_cuts_at_the_first_stop() {
    let stops = ["<|im_end|>", "\nUser:", "🛑"];
    let texts = [
        "Paris is the capital.<|im_end|>ignored",
        "line one\nUser: next turn",
        "no stop here <|im_en but close",
        "emoji 🛑 stop",
        "<|im_end|>",
        "ends with a partial <|im_",
        "\nUser",
    ];
    for text in texts {
        let first = stops.iter().filter_map(|s| text.find(s)).min();
        let expected = first.map_or(text, |i| &text[..i]);
        for pieces in chunkings(text) {
            let (out, stopped, _) = run(&stops, &pieces);
            assert_eq!(out, expected, "text {text:?} in pieces {pieces:?}");
            assert_eq!(
                stopped,
                first.is_some(),
                "text {text:?} in pieces {pieces:?}"
            );
        }
    }
}

#[test]
fn holds_back_only_a_possible_stop_prefix() {
    let (_, _, released) = run(&["<|im_end|>"], &["Hello <|im", "_x"]);
    assert_eq!(released, vec!["Hello ".to_string(), "<|im_x".to_string()]);
}

#[test]
fn nothing_after_stopping_and_no_stops_passes_everything() {
    let mut m = StopMatcher::new(["END"]);
    assert!(m.push("aEND").stopped);
    let after = m.push("more");
    assert!(after.stopped && after.text.is_empty());
    let mut none = StopMatcher::new(Vec::<String>::new());
    assert_eq!(none.push("<|im_").text, "<|im_");
}

//! How generation results are shown: one human line, or JSON.

use minibar_engine::ChatOutcome;
use serde_json::{json, Value};

/// `42 tokens · 31.2 tok/s · first token 0.21 s · prompt 25 tokens at 640 tok/s`.
pub fn stats_line(o: &ChatOutcome) -> String {
    let s = &o.stats;
    let mut line = format!(
        "{} tokens · {:.1} tok/s · first token {:.2} s · prompt {} tokens at {:.0} tok/s",
        s.generated_tokens,
        s.decode_tps(),
        s.time_to_first_token.as_secs_f64(),
        s.prompt_tokens,
        s.prefill_tps()
    );
    if s.cached_tokens > 0 {
        line.push_str(&format!(" ({} cached)", s.cached_tokens));
    }
    if o.dropped_messages > 0 {
        line.push_str(&format!(
            " · {} oldest messages left out to fit the context",
            o.dropped_messages
        ));
    }
    line
}

/// The reply and its statistics as JSON.
pub fn outcome_json(o: &ChatOutcome) -> Value {
    let s = &o.stats;
    json!({
        "text": o.text,
        "finish_reason": o.finish,
        "prompt_tokens": s.prompt_tokens,
        "cached_tokens": s.cached_tokens,
        "generated_tokens": s.generated_tokens,
        "time_to_first_token_s": s.time_to_first_token.as_secs_f64(),
        "prompt_tps": s.prefill_tps(),
        "generation_tps": s.decode_tps(),
        "dropped_messages": o.dropped_messages,
    })
}

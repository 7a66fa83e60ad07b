//! Full-text search over message text (FTS5) and titles.

use rusqlite::params;

use super::store::History;
use crate::types::{AppResult, SearchHit};

/// Hits returned at most.
const MAX_HITS: usize = 50;

/// Turns what a person types into an FTS5 query: each word a quoted prefix term, all required,
/// so punctuation and FTS operators in the input cannot make the query invalid.
pub fn fts_query(input: &str) -> Option<String> {
    let terms: Vec<String> = input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\"*"))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

impl History {
    /// Messages matching every word of `query` (as prefixes), best first, one hit per
    /// message; then sessions whose title matches and that had no message hit.
    pub fn search(&self, query: &str) -> AppResult<Vec<SearchHit>> {
        let Some(fts) = fts_query(query) else {
            return Ok(Vec::new());
        };
        let hits: Vec<(String, String, String)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT m.session_id, m.id,
                        snippet(messages_fts, 0, '', '', '…', 12)
                 FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid
                 WHERE messages_fts MATCH ?1
                 ORDER BY rank LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![fts, MAX_HITS as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut out = Vec::new();
        for (session_id, message_id, snippet) in hits {
            out.push(SearchHit {
                session: self.summary(&session_id)?,
                message_id,
                snippet,
            });
        }
        let words: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| w.to_lowercase())
            .collect();
        for s in self.list_sessions()? {
            let title = s.title.to_lowercase();
            if out.len() >= MAX_HITS {
                break;
            }
            if words.iter().all(|w| title.contains(w.as_str()))
                && !out.iter().any(|h| h.session.id == s.id)
            {
                out.push(SearchHit {
                    snippet: s.title.clone(),
                    message_id: String::new(),
                    session: s,
                });
            }
        }
        Ok(out)
    }
}

//! The real commands (history, generation plumbing, settings store, models, capabilities) on
//! Tauri's mock runtime, through the same `configure` as the app and its real capabilities.
//! The engine is scripted: these tests check the shell, not the model.

mod common;

use common::{app, app_in, call_from, next, MODEL, PIECES};
use serde_json::{json, Value};
use tauri::{Manager, WebviewWindowBuilder};

fn new_session(t: &common::TestApp) -> String {
    let s = t.call("create_session", json!({ "model": MODEL })).unwrap();
    s["id"].as_str().unwrap().to_string()
}

/// Sends a message and returns (requestId, assistantMessageId) and the chat events until done.
fn send(t: &common::TestApp, session: &str, content: &str) -> (Value, Vec<Value>) {
    let events = t.listen("chat-event");
    let started = t
        .call(
            "send_message",
            json!({ "request": { "sessionId": session, "content": content, "model": MODEL, "params": null } }),
        )
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let e = next(&events);
        let kind = e["kind"].as_str().unwrap().to_string();
        seen.push(e);
        if kind == "done" || kind == "error" {
            break;
        }
    }
    (started, seen)
}

#[test]
fn a_reply_streams_as_events_and_is_stored() {
    let t = app();
    let session = new_session(&t);
    let (started, events) = send(&t, &session, "Say hello");
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["started", "token", "token", "token", "done"]);
    let request = started["requestId"].as_str().unwrap();
    for (i, e) in events[1..4].iter().enumerate() {
        assert_eq!(e["index"], i);
        assert_eq!(e["text"], PIECES[i]);
        assert_eq!(e["requestId"], request);
        assert_eq!(e["messageId"], started["assistantMessageId"]);
    }
    assert_eq!(events[4]["stats"]["stopReason"], "eos");

    let chat = t.call("open_session", json!({ "id": session })).unwrap();
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], "Say hello");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], PIECES.concat());
    assert_eq!(messages[1]["status"], "done");
    assert_eq!(messages[1]["model"], MODEL);
    assert_eq!(messages[1]["stats"]["generatedTokens"], 3);
    assert_eq!(chat["title"], "Say hello");

    // The engine got the system prompt and the conversation.
    let job = t.jobs.recv().unwrap();
    assert_eq!(job[0].0, "system");
    assert_eq!(
        job.last().unwrap(),
        &("user".to_string(), "Say hello".to_string())
    );
}

#[test]
fn history_lists_searches_exports_and_deletes() {
    let t = app();
    let a = new_session(&t);
    send(&t, &a, "Tell me about pelicans");
    let b = new_session(&t);
    send(&t, &b, "Explain quicksort");

    let list = t.call("list_sessions", json!({})).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str()], "newest first");
    assert_eq!(list[0]["messageCount"], 2);
    assert_eq!(list[0]["preview"], PIECES.concat());

    let hits = t
        .call("search_sessions", json!({ "query": "pelic" }))
        .unwrap();
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["session"]["id"], a);
    assert!(hits[0]["snippet"].as_str().unwrap().contains("pelicans"));
    // FTS syntax in the input is taken as words, not as a query error.
    assert!(t
        .call("search_sessions", json!({ "query": "\"quick AND (" }))
        .is_ok());

    let md = t
        .call("export_session_markdown", json!({ "id": b }))
        .unwrap();
    assert_eq!(md["fileName"], "explain-quicksort.md");
    let text = md["markdown"].as_str().unwrap();
    assert!(text.starts_with("# Explain quicksort\n"));
    assert!(text.contains("## You\n\nExplain quicksort"));
    assert!(text.contains(&PIECES.concat()));

    t.call("delete_session", json!({ "id": a })).unwrap();
    assert_eq!(
        t.call("list_sessions", json!({}))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let err = t.call("open_session", json!({ "id": a })).unwrap_err();
    assert_eq!(err["kind"], "not_found");
}

#[test]
fn stop_ends_the_stream_with_stopped_and_keeps_the_text() {
    let t = app();
    let session = new_session(&t);
    let events = t.listen("chat-event");
    let started = t
        .call(
            "send_message",
            json!({ "request": { "sessionId": session, "content": "/slow please", "model": MODEL, "params": null } }),
        )
        .unwrap();
    assert_eq!(next(&events)["kind"], "started");
    assert_eq!(next(&events)["kind"], "token");
    t.call(
        "stop_generation",
        json!({ "requestId": started["requestId"] }),
    )
    .unwrap();
    let end = next(&events);
    assert_eq!(end["kind"], "done");
    assert_eq!(end["stats"]["stopReason"], "stopped");
    let chat = t.call("open_session", json!({ "id": session })).unwrap();
    assert_eq!(chat["messages"][1]["status"], "stopped");
    assert_eq!(chat["messages"][1]["content"], PIECES[0]);
}

#[test]
fn engine_errors_reach_the_ui_and_the_history() {
    let t = app();
    let session = new_session(&t);
    let (_, events) = send(&t, &session, "/fail now");
    let end = events.last().unwrap();
    assert_eq!(end["kind"], "error");
    assert_eq!(end["error"]["kind"], "engine");
    let chat = t.call("open_session", json!({ "id": session })).unwrap();
    assert_eq!(chat["messages"][1]["status"], "error");
    assert_eq!(chat["messages"][1]["error"]["message"], "scripted failure");
}

#[test]
fn a_panic_in_the_engine_ends_that_reply_and_the_next_chat_works() {
    let t = app();
    let session = new_session(&t);
    let (_, events) = send(&t, &session, "/panic now");
    let end = events.last().unwrap();
    assert_eq!(end["kind"], "error");
    assert_eq!(end["error"]["kind"], "engine");
    let chat = t.call("open_session", json!({ "id": session })).unwrap();
    assert_eq!(chat["messages"][1]["status"], "error");
    // The piece streamed before the panic is kept.
    assert_eq!(chat["messages"][1]["content"], PIECES[0]);
    let (_, events) = send(&t, &session, "Still there?");
    assert_eq!(events.last().unwrap()["kind"], "done");
    let chat = t.call("open_session", json!({ "id": session })).unwrap();
    assert_eq!(chat["messages"][3]["content"], PIECES.concat());
}

#[test]
fn a_reply_the_history_cannot_save_is_reported_to_the_ui() {
    let t = app();
    let session = new_session(&t);
    // Makes every write of a reply fail, as a full disk would.
    let db = rusqlite::Connection::open(t.data_dir.join("history.sqlite3")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER fail_replies BEFORE UPDATE ON messages WHEN new.role = 'assistant'
         BEGIN SELECT RAISE(ABORT, 'disk is full'); END;",
    )
    .unwrap();
    let (_, events) = send(&t, &session, "Say hello");
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["started", "token", "token", "token", "saveFailed", "done"]
    );
    let failed = &events[4];
    assert_eq!(failed["error"]["kind"], "io");
    assert!(failed["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disk is full"));
}

#[test]
fn regenerate_and_edit_replace_what_follows() {
    let t = app();
    let session = new_session(&t);
    send(&t, &session, "First question");
    let events = t.listen("chat-event");
    let r = t
        .call(
            "regenerate",
            json!({ "sessionId": session, "model": MODEL, "params": null }),
        )
        .unwrap();
    assert!(r["userMessageId"].is_null());
    while next(&events)["kind"] != "done" {}
    let chat = t.call("open_session", json!({ "id": session })).unwrap();
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "the old reply was replaced");
    assert_eq!(messages[1]["id"], r["assistantMessageId"]);

    let user_id = messages[0]["id"].clone();
    let e = t
        .call(
            "edit_and_resend",
            json!({ "sessionId": session, "messageId": user_id, "content": "Second question", "model": MODEL, "params": null }),
        )
        .unwrap();
    while next(&events)["kind"] != "done" {}
    let chat = t.call("open_session", json!({ "id": session })).unwrap();
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["content"], "Second question");
    assert_eq!(messages[1]["id"], e["assistantMessageId"]);
}

#[test]
fn bad_requests_store_nothing() {
    let t = app();
    let session = new_session(&t);
    let err = t
        .call(
            "send_message",
            json!({ "request": { "sessionId": session, "content": "hi", "model": "nope@4bit", "params": null } }),
        )
        .unwrap_err();
    assert_eq!(err["kind"], "no_model");
    let err = t
        .call(
            "send_message",
            json!({ "request": { "sessionId": session, "content": "  ", "model": MODEL, "params": null } }),
        )
        .unwrap_err();
    assert_eq!(err["kind"], "invalid_input");
    let chat = t.call("open_session", json!({ "id": session })).unwrap();
    assert!(chat["messages"].as_array().unwrap().is_empty());
}

#[test]
fn chats_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap().keep();
    let session = {
        let t = app_in(Some(dir.clone()));
        let s = new_session(&t);
        send(&t, &s, "Remember me");
        s
    };
    let t = app_in(Some(dir));
    let chat = t.call("open_session", json!({ "id": session })).unwrap();
    assert_eq!(chat["messages"][0]["content"], "Remember me");
    assert_eq!(chat["messages"][1]["content"], PIECES.concat());
}

#[test]
fn deleting_a_chat_while_it_streams_reports_no_save_failure() {
    let t = app();
    let session = new_session(&t);
    let events = t.listen("chat-event");
    t.call(
        "send_message",
        json!({ "request": { "sessionId": session, "content": "/slow please", "model": MODEL, "params": null } }),
    )
    .unwrap();
    assert_eq!(next(&events)["kind"], "started");
    assert_eq!(next(&events)["kind"], "token");
    t.call("delete_session", json!({ "id": session })).unwrap();
    let end = next(&events);
    assert_eq!(end["kind"], "done", "{end}");
    assert_eq!(end["stats"]["stopReason"], "stopped");
}

#[test]
fn a_corrupt_history_is_set_aside_and_the_user_told() {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(dir.join("history.sqlite3"), b"not a database ".repeat(100)).unwrap();
    let t = app_in(Some(dir.clone()));
    let notices = t.call("startup_notices", json!({})).unwrap();
    let notices = notices.as_array().unwrap();
    assert_eq!(notices.len(), 1);
    let notice = notices[0].as_str().unwrap();
    assert!(notice.starts_with("Your chat history could not be read"));
    assert!(notice.contains("history.sqlite3.corrupt-"));
    // A fresh history works.
    let session = new_session(&t);
    let (_, events) = send(&t, &session, "Hello again");
    assert_eq!(events.last().unwrap()["kind"], "done");
    // The next start finds nothing to report.
    drop(t);
    let t = app_in(Some(dir));
    assert_eq!(t.call("startup_notices", json!({})).unwrap(), json!([]));
}

#[test]
fn settings_saved_through_the_store_reach_the_engine() {
    let t = app();
    // As the UI does: the store the app opened at start, by name.
    let rid = t
        .call("plugin:store|get_store", json!({ "path": "settings.json" }))
        .unwrap();
    assert!(rid.is_u64(), "the app opened the settings store: {rid}");
    let settings = json!({
        "defaultModel": MODEL,
        "sampling": { "temperature": 0.2, "topP": 0.9, "topK": 20, "minP": 0.0, "repetitionPenalty": 1.0, "maxTokens": 64, "seed": 7 },
        "systemPrompt": "You are terse.",
        "contextLength": 2048,
        "memoryHeadroomBytes": 1000000000u64,
        "modelsFolder": "",
        "hfCacheFolder": "",
        "hfEndpoint": "https://huggingface.co",
        "launchAtLogin": false
    });
    t.call(
        "plugin:store|set",
        json!({ "rid": rid, "key": "settings", "value": settings }),
    )
    .unwrap();
    t.call("plugin:store|save", json!({ "rid": rid })).unwrap();
    t.call("settings_changed", json!({})).unwrap();
    let got = t
        .call("plugin:store|get", json!({ "rid": rid, "key": "settings" }))
        .unwrap();
    assert_eq!(got[0]["systemPrompt"], "You are terse.");

    let session = new_session(&t);
    send(&t, &session, "Settings check");
    let job = t.jobs.recv().unwrap();
    assert_eq!(job[0], ("system".to_string(), "You are terse.".to_string()));
}

/// Saves `settings` through the store as the UI does, then tells the app.
fn save_settings(t: &common::TestApp, settings: Value) -> Result<Value, Value> {
    let rid = t
        .call("plugin:store|get_store", json!({ "path": "settings.json" }))
        .unwrap();
    t.call(
        "plugin:store|set",
        json!({ "rid": rid, "key": "settings", "value": settings }),
    )
    .unwrap();
    t.call("plugin:store|save", json!({ "rid": rid })).unwrap();
    t.call("settings_changed", json!({}))
}

#[test]
fn the_model_folders_follow_the_settings() {
    let t = app();
    let env = |v: &str| std::path::PathBuf::from(std::env::var_os(v).unwrap());
    let defaults = t.call("library_folders", json!({})).unwrap();
    let default_store = env("MINIBAR_HOME").join("models").display().to_string();
    let default_cache = env("HF_HUB_CACHE").display().to_string();
    assert_eq!(defaults["defaultModelsFolder"], default_store);
    assert_eq!(defaults["defaultHfCacheFolder"], default_cache);

    // Folders of the user's choosing, one holding a model of 1000 bytes.
    let chosen = tempfile::tempdir().unwrap();
    let store = chosen.path().join("store");
    let cache = chosen.path().join("hf-cache");
    std::fs::create_dir_all(store.join("Tiny-Local")).unwrap();
    std::fs::write(store.join("Tiny-Local/tiny.Q4_0.gguf"), vec![0u8; 1000]).unwrap();
    save_settings(
        &t,
        json!({ "modelsFolder": store.display().to_string(), "hfCacheFolder": cache.display().to_string() }),
    )
    .unwrap();
    let now = t.call("library_folders", json!({})).unwrap();
    assert_eq!(now["modelsFolder"], store.display().to_string());
    assert_eq!(now["hfCacheFolder"], cache.display().to_string());
    assert_eq!(now["defaultModelsFolder"], default_store);
    assert!(cache.is_dir(), "a chosen folder is created");
    let disk = t.call("disk_usage", json!({})).unwrap();
    assert_eq!(disk["folder"], cache.display().to_string());
    assert_eq!(
        disk["modelsBytes"], 1000,
        "the library reads the chosen store"
    );

    // A relative path is refused and the library stays where it was.
    let err = save_settings(&t, json!({ "modelsFolder": "models" })).unwrap_err();
    assert_eq!(err["kind"], "invalid_input");
    assert!(err["message"].as_str().unwrap().contains("full path"));
    let kept = t.call("library_folders", json!({})).unwrap();
    assert_eq!(kept["modelsFolder"], store.display().to_string());

    // An endpoint the token must not go to is refused when saved, and downloads refuse it.
    let err = save_settings(&t, json!({ "hfEndpoint": "http://hf-mirror.example" })).unwrap_err();
    assert_eq!(err["kind"], "invalid_input");
    assert!(
        err["message"].as_str().unwrap().contains("unencrypted"),
        "{err}"
    );
    let err = t
        .call(
            "start_download",
            json!({ "variantId": "smollm2-135m@4bit" }),
        )
        .unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("cannot be used"),
        "{err}"
    );

    // Empty settings: back to the defaults (and no other test sees the chosen folders).
    save_settings(&t, json!({})).unwrap();
    let back = t.call("library_folders", json!({})).unwrap();
    assert_eq!(back["modelsFolder"], default_store);
    assert_eq!(back["hfCacheFolder"], default_cache);
}

#[test]
fn capabilities_allow_only_the_ui_and_its_commands() {
    let t = app();
    // A store command the UI does not use is refused.
    assert!(t.call("plugin:store|clear", json!({ "rid": 0 })).is_err());
    // The webview cannot open (and so create or overwrite) a store at a path of its choosing.
    let outside = t.app.path().app_data_dir().unwrap().join("../escaped.json");
    for path in ["../escaped.json", outside.to_str().unwrap(), "other.json"] {
        let opened = t.call(
            "plugin:store|load",
            json!({ "path": path, "options": { "autoSave": false, "defaults": {} } }),
        );
        assert!(opened.is_err(), "{path}: {opened:?}");
        let got = t.call("plugin:store|get_store", json!({ "path": path }));
        assert_eq!(got, Ok(json!(null)), "{path}");
    }
    assert!(!outside.exists());
    // A window the capability does not name cannot call anything.
    let other = WebviewWindowBuilder::new(&t.app, "intruder", Default::default())
        .build()
        .unwrap();
    assert!(call_from(&other, "list_sessions", json!({})).is_err());
    assert!(t.call("list_sessions", json!({})).is_ok());
}

#[test]
fn models_commands_describe_this_machine() {
    let t = app();
    let catalog = t.call("list_catalog", json!({})).unwrap();
    let smol = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "smollm2-135m")
        .expect("SmolLM2 135M is in the catalog");
    let local = smol["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == MODEL)
        .expect("the MINIBAR_DEFAULT_MODEL file shows as an installed variant");
    assert_eq!(local["installed"], true);
    assert!(["fits", "tight", "wont_fit"].contains(&local["fit"]["verdict"].as_str().unwrap()));
    assert!(smol["variants"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["installed"] == false));

    let mem = t.call("memory_status", json!({})).unwrap();
    assert!(mem["totalBytes"].as_u64().unwrap() > mem["availableBytes"].as_u64().unwrap());
    let disk = t.call("disk_usage", json!({})).unwrap();
    assert!(disk["totalBytes"].as_u64().unwrap() >= disk["freeBytes"].as_u64().unwrap());

    let err = t
        .call("start_download", json!({ "variantId": "no-such@4bit" }))
        .unwrap_err();
    assert_eq!(err["kind"], "not_found");
    let err = t
        .call("delete_model", json!({ "variantId": MODEL }))
        .unwrap_err();
    assert_eq!(
        err["kind"], "invalid_input",
        "the override file is not Minibar's to delete"
    );
}

#[test]
fn deleting_a_model_in_use_is_refused_with_the_reason() {
    use minibar_hub::library::{LibraryPaths, ModelInUse, Use};
    let t = app();
    // A library model in a store of this app's own (other tests' apps do not see it).
    let chosen = tempfile::tempdir().unwrap();
    let store = chosen.path().join("store");
    let folder = store.join("SmolLM2-135M-Instruct-held");
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("SmolLM2-135M-Instruct.Q8_0.gguf");
    std::fs::write(&file, b"GGUF").unwrap();
    save_settings(&t, json!({ "modelsFolder": store.display().to_string() })).unwrap();
    let variant = json!({ "variantId": "smollm2-135m@q8_0" });

    // Held as the engine holds a model it loads for a chat.
    let library = LibraryPaths {
        store: store.clone(),
        ..LibraryPaths::from_env()
    };
    let chat = ModelInUse::for_path(&library, &file, Use::Chat)
        .unwrap()
        .expect("the file is in the library");
    let err = t.call("delete_model", variant.clone()).unwrap_err();
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("in use by a chat"), "{err}");
    assert!(file.is_file(), "a refused delete leaves the files");

    drop(chat);
    t.call("delete_model", variant).unwrap();
    assert!(!folder.exists());
    save_settings(&t, json!({})).unwrap();
}

#[test]
fn a_benchmark_of_a_model_that_cannot_load_fails_and_stores_nothing() {
    // The sandbox's installed model is a stand-in file: the suite skips it, and a run with no
    // model is a failure, not a record.
    let t = app();
    let finished = t.listen("bench-finished");
    let run_id = t
        .call("start_benchmark", json!({ "mode": "quick" }))
        .unwrap();
    let end = common::next_slow(&finished);
    assert_eq!(end["runId"], run_id);
    assert_eq!(end["status"], "failed");
    assert_eq!(end["error"]["kind"], "engine");
    assert!(end["error"]["message"]
        .as_str()
        .unwrap()
        .contains("No model could be benchmarked"));
    assert_eq!(t.call("list_bench_runs", json!({})).unwrap(), json!([]));
    let err = t.call("get_bench_run", json!({ "id": "1" })).unwrap_err();
    assert_eq!(err["kind"], "not_found");
    let err = t
        .call("export_bench_run", json!({ "id": "x", "format": "csv" }))
        .unwrap_err();
    assert_eq!(err["kind"], "not_found");
    let refs = t.call("bench_reference", json!({})).unwrap();
    let refs = refs.as_array().unwrap();
    assert!(refs
        .iter()
        .any(|r| r["chip"] == "M4 Max" && r["metric"] == "tg128"));
    assert!(refs
        .iter()
        .all(|r| r["url"].as_str().unwrap().starts_with("https://")));
}

#[test]
fn quantize_refuses_what_it_cannot_do() {
    let t = app();
    let err = t
        .call(
            "quantize_model",
            json!({ "request": { "sourceVariantId": "nope@q4_1", "bits": 4, "groupSize": 64 } }),
        )
        .unwrap_err();
    assert_eq!(err["kind"], "not_found");
    let err = t
        .call(
            "quantize_model",
            json!({ "request": { "sourceVariantId": MODEL, "bits": 4, "groupSize": 48 } }),
        )
        .unwrap_err();
    assert_eq!(err["kind"], "invalid_input");
    let err = t
        .call(
            "cancel_quantize",
            json!({ "variantId": "smollm2-135m@4bit" }),
        )
        .unwrap_err();
    assert_eq!(err["kind"], "not_found");
}

#[test]
fn links_must_be_http() {
    let t = app();
    let err = t
        .call("open_external", json!({ "url": "javascript:alert(1)" }))
        .unwrap_err();
    assert_eq!(err["kind"], "invalid_input");
}

#[test]
fn committed_bindings_match_the_rust_types() {
    let fresh = minibar_app::bindings::render().expect("bindings render");
    // The checkout under test (set by `cargo test`), not the one the binary was built in: a
    // shared target folder may hold a test binary compiled in another clone.
    let path = match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(dir) => std::path::Path::new(&dir).join("../ui/src/lib/bindings.ts"),
        None => std::path::PathBuf::from(minibar_app::bindings::BINDINGS_PATH),
    };
    if std::env::var_os("MINIBAR_UPDATE_BINDINGS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        fresh == committed,
        "ui/src/lib/bindings.ts is stale: run this test with MINIBAR_UPDATE_BINDINGS=1"
    );
}

/// A GET on loopback, as a client of the local server would send it; the body.
fn http_get(url: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn the_local_server_switch_serves_the_installed_model_and_is_saved() {
    let t = app();
    let off = t.call("local_server_status", json!({})).unwrap();
    assert_eq!(off["running"], false);
    // Port 0: any free port (the UI asks for 1..65535; tests must not collide).
    let on = t
        .call("set_local_server", json!({ "enabled": true, "port": 0 }))
        .unwrap();
    assert_eq!(on["running"], true, "{on}");
    let url = on["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let models = http_get(&format!("{url}/v1/models")).unwrap();
    assert!(models.starts_with("HTTP/1.1 200"), "{models}");
    // The installed model (MINIBAR_DEFAULT_MODEL), not loaded: no model loads until asked.
    assert!(models.contains("SmolLM2-135M-Instruct.Q4_1"), "{models}");
    assert_eq!(t.call("local_server_status", json!({})).unwrap(), on);
    let rid = t
        .call("plugin:store|get_store", json!({ "path": "settings.json" }))
        .unwrap();
    let saved = t
        .call("plugin:store|get", json!({ "rid": rid, "key": "settings" }))
        .unwrap();
    assert_eq!(saved[0]["localServer"], true, "{saved}");

    let stopped = t
        .call("set_local_server", json!({ "enabled": false, "port": 0 }))
        .unwrap();
    assert_eq!(stopped["running"], false);
    assert!(
        http_get(&format!("{url}/v1/models")).is_err(),
        "still answering"
    );
    let saved = t
        .call("plugin:store|get", json!({ "rid": rid, "key": "settings" }))
        .unwrap();
    assert_eq!(saved[0]["localServer"], false, "{saved}");

    // Quitting with the server on stops it (the app's exit hook), without hanging.
    let on = t
        .call("set_local_server", json!({ "enabled": true, "port": 0 }))
        .unwrap();
    let url = on["url"].as_str().unwrap().to_string();
    minibar_app::local_server::shutdown(t.app.handle());
    assert!(
        http_get(&format!("{url}/v1/models")).is_err(),
        "still answering"
    );
    assert_eq!(
        t.call("local_server_status", json!({})).unwrap()["running"],
        false
    );
    t.call("set_local_server", json!({ "enabled": false, "port": 0 }))
        .unwrap();
}

//! The tokenizer built from GGUF metadata against llama.cpp (the GGUF's defining tokenizer) and
//! against transformers loading the tokenizer.json we write.

mod common;

use minibar_text::{GgufMetadata, GgufValue, TextModel};
use serde_json::Value;

/// Encodes the corpus with our tokenizer for `meta` as it is (`None`) and relabelled with each
/// other pre-tokenizer name, runs the reference once for all, and compares everything.
fn check_against_reference(meta: &GgufMetadata, pres: &[Option<&str>]) {
    let Some(python) = minibar_testkit::reference_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let corpus_path = common::fixture("corpus.json");
    let mut args: Vec<std::ffi::OsString> = vec![
        "--gguf".into(),
        meta.path.clone().into(),
        "--corpus".into(),
        corpus_path.into(),
        "--workdir".into(),
        dir.path().into(),
    ];
    let mut models = Vec::new();
    for (i, pre) in pres.iter().enumerate() {
        let mut meta = meta.clone();
        if let Some(pre) = pre {
            meta.kv.insert(
                "tokenizer.ggml.pre".into(),
                GgufValue::String(pre.to_string()),
            );
        }
        let model = TextModel::from_gguf(&meta).expect("tokenizer builds from GGUF");
        let case_dir = dir.path().join(format!("case{i}"));
        std::fs::create_dir(&case_dir).unwrap();
        model.save_hf_files(&case_dir).unwrap();
        args.extend([
            "--case".into(),
            pre.unwrap_or("-").into(),
            case_dir.join("tokenizer.json").into(),
        ]);
        models.push(model);
    }
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    // llama.cpp and transformers on this GGUF, corpus and the tokenizer.json files we wrote.
    let mut key = minibar_testkit::Key::for_script("gguf_tokenize.py");
    key.file(&meta.path).file(&common::fixture("corpus.json"));
    for (i, pre) in pres.iter().enumerate() {
        key.bytes(pre.unwrap_or("-").as_bytes())
            .file(&dir.path().join(format!("case{i}/tokenizer.json")));
    }
    let reference = common::run_reference_cached(&python, "gguf_tokenize.py", &args, &key);
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), pres.len());
    let corpus = common::corpus();
    let mut failures = Vec::new();
    for ((model, pre), case) in models.iter().zip(pres).zip(cases) {
        let ids_of =
            |key: &str| -> Vec<Vec<u32>> { serde_json::from_value(case[key].clone()).unwrap() };
        let llama = ids_of("llama_cpp");
        let hf = ids_of("transformers");
        let decoded: Vec<String> =
            serde_json::from_value(case["tokenizers_decode"].clone()).unwrap();
        assert_eq!(llama.len(), corpus.len());
        for (i, text) in corpus.iter().enumerate() {
            let ours = model.encode(text, false).unwrap();
            if ours != llama[i] {
                failures.push(format!(
                    "pre {pre:?}: llama.cpp differs on {text:?}:\n  ours  {ours:?}\n  llama {:?}",
                    llama[i]
                ));
            }
            if ours != hf[i] {
                failures.push(format!(
                    "pre {pre:?}: transformers differs on {text:?}:\n  ours {ours:?}\n  hf   {:?}",
                    hf[i]
                ));
            }
            let ours_text = model.decode(&ours, false).unwrap();
            if ours_text != decoded[i] {
                failures.push(format!(
                    "pre {pre:?}: decode differs on {text:?}: ours {ours_text:?}, python {:?}",
                    decoded[i]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn open_default() -> Option<GgufMetadata> {
    minibar_testkit::default_gguf().map(|p| GgufMetadata::open(p).expect("default GGUF opens"))
}

/// SmolLM2's own "smollm" pre-tokenizer, and other pre-tokenizers on SmolLM2's vocabulary
/// relabelled (llama.cpp reads the relabelled file), all in one reference run.
#[test]
fn gguf_bpe_ids_match_llama_cpp_and_transformers() {
    let Some(meta) = open_default() else {
        return;
    };
    assert_eq!(meta.get_str("tokenizer.ggml.pre").unwrap(), Some("smollm"));
    let pres = [
        None,
        Some("gpt-2"),
        Some("llama-bpe"),
        Some("qwen2"),
        Some("default"),
        Some("starcoder"),
        Some("tekken"),
    ];
    check_against_reference(&meta, &pres);
}

/// A SentencePiece-BPE vocabulary with byte fallback ("llama" in GGUF): a real SentencePiece
/// model trained by the reference script, written as llama.cpp's converter writes it.
fn sentencepiece_gguf(dir: &std::path::Path) -> Option<GgufMetadata> {
    let base = minibar_testkit::default_gguf()?;
    let python = minibar_testkit::reference_python()?;
    let out = dir.join("spm.gguf");
    let mut args = vec![
        "--base".as_ref(),
        base.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    let corpus = common::fixture("corpus.json");
    let templates: Vec<_> = std::fs::read_dir(common::fixture("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jinja"))
        .collect();
    args.push(corpus.as_os_str());
    args.extend(templates.iter().map(|p| p.as_os_str()));
    common::run_reference(&python, "spm_gguf.py", &args);
    let meta = GgufMetadata::open(&out).unwrap();
    assert_eq!(meta.get_str("tokenizer.ggml.model").unwrap(), Some("llama"));
    Some(meta)
}

#[test]
fn sentencepiece_ids_match_llama_cpp_and_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(meta) = sentencepiece_gguf(dir.path()) else {
        return;
    };
    check_against_reference(&meta, &[None]);
    let model = TextModel::from_gguf(&meta).unwrap();
    assert!(model.add_bos, "SentencePiece vocabularies add BOS");
    check_streaming(&model);
}

/// Streaming the ids of every corpus text one at a time rebuilds exactly the full decode.
#[test]
fn streaming_decode_concatenates_to_full_decode() {
    let Some(meta) = open_default() else {
        return;
    };
    check_streaming(&TextModel::from_gguf(&meta).unwrap());
}

fn check_streaming(model: &TextModel) {
    for text in common::corpus() {
        let ids = model.encode(&text, false).unwrap();
        for skip_special in [false, true] {
            let mut dec = model.stream_decoder(skip_special);
            let mut streamed = String::new();
            for &id in &ids {
                if let Some(piece) = dec.push(id).unwrap() {
                    streamed.push_str(&piece);
                }
            }
            streamed.extend(dec.finish().unwrap());
            assert_eq!(
                streamed,
                model.decode(&ids, skip_special).unwrap(),
                "text {text:?}"
            );
        }
    }
}

/// The files `minibar import` writes load back to the same tokenizer, ids and template.
#[test]
fn saved_hf_files_round_trip() {
    let Some(meta) = open_default() else {
        return;
    };
    let model = TextModel::from_gguf(&meta).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save_hf_files(dir.path()).unwrap();
    let back = TextModel::from_hf_dir(dir.path()).unwrap();
    assert_eq!(back.bos, model.bos);
    assert_eq!(back.add_bos, model.add_bos);
    assert_eq!(back.eos_token, model.eos_token);
    assert_eq!(back.eos, model.eos);
    for text in common::corpus() {
        assert_eq!(
            back.encode(&text, true).unwrap(),
            model.encode(&text, true).unwrap()
        );
    }
    let msgs = [minibar_text::Message::user("Hi")];
    assert_eq!(
        back.chat_template().render(&msgs, true).unwrap(),
        model.chat_template().render(&msgs, true).unwrap()
    );
    // transformers reads the same folder to the same special tokens, stop ids and prompt.
    if let Some(python) = minibar_testkit::reference_python() {
        let conv = dir.path().join("conversation.json");
        std::fs::write(&conv, serde_json::to_string(&msgs).unwrap()).unwrap();
        let r = common::run_reference(
            &python,
            "hf_folder.py",
            &[conv.as_os_str(), dir.path().as_os_str()],
        );
        let r = &r[0];
        assert_eq!(r["bos_token_id"].as_u64(), model.bos.map(u64::from));
        assert_eq!(r["eos_token_id"].as_u64(), model.eos_token.map(u64::from));
        let gen: Vec<u32> = serde_json::from_value(r["generation_eos"].clone()).unwrap();
        assert_eq!(
            gen.iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            model.eos
        );
        assert_eq!(
            r["rendered"].as_str(),
            Some(model.chat_template().render(&msgs, true).unwrap().as_str())
        );
    }
    let _: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
}

//! `build_request`: URLs, credentials, native bodies and the canonical →
//! Gemini translation.

use orch_plugin_sdk::{
    Adapter, Credential, ErrorClass, Framing, JsonEdit, Operation, RequestBody, RequestContext,
};
use serde_json::{Value, json};

use super::{
    BASE, body_of, body_text, build, build_err, build_request, chat, ctx, headers, native_ctx,
    provider,
};
use crate::Gemini;

// ---------------------------------------------------------- URLs and headers

#[test]
fn non_streaming_request() {
    let request = build_request(&ctx(false), &chat(json!({}))).expect("request");
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        format!("{BASE}/v1beta/models/gemini-2.5-flash:generateContent")
    );
    assert_eq!(
        request.credential,
        Credential::Header("x-goog-api-key".to_owned())
    );
    assert_eq!(request.framing, Framing::Sse);
    assert_eq!(
        request.headers,
        headers(&[
            ("content-type", "application/json"),
            ("accept", "application/json")
        ])
    );
    assert_eq!(
        body_of(&request),
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    );
}

#[test]
fn streaming_request_uses_sse() {
    let request = build_request(&ctx(true), &chat(json!({"stream": true}))).expect("request");
    assert_eq!(
        request.url,
        format!("{BASE}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    );
    assert_eq!(request.framing, Framing::Sse);
    assert_eq!(
        request.headers,
        headers(&[
            ("content-type", "application/json"),
            ("accept", "text/event-stream")
        ])
    );
    // The key never goes in the URL.
    assert!(!request.url.contains("key="));
}

#[test]
fn url_options_and_model_names() {
    let mut ctx = RequestContext {
        provider: provider(
            "http://127.0.0.1:9090/",
            json!({"api_version": "v1alpha", "headers": {"X-Goog-User-Project": "proj"}}),
        ),
        ..ctx(false)
    };
    let request = build_request(&ctx, &chat(json!({}))).expect("request");
    assert_eq!(
        request.url,
        "http://127.0.0.1:9090/v1alpha/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        request.headers[2],
        ("x-goog-user-project".to_owned(), "proj".to_owned())
    );

    for (model, path) in [
        ("models/gemini-2.0-flash", "models/gemini-2.0-flash"),
        ("tunedModels/my-tune-123", "tunedModels/my-tune-123"),
        (
            "gemini-2.5-pro-preview-06-05",
            "models/gemini-2.5-pro-preview-06-05",
        ),
    ] {
        model.clone_into(&mut ctx.upstream_model);
        let request = build_request(&ctx, &chat(json!({}))).expect("request");
        assert_eq!(
            request.url,
            format!("http://127.0.0.1:9090/v1alpha/{path}:generateContent")
        );
    }
    for model in ["", "a b", "../x", "m?x=1", "m#f", "/models/x", "models//x"] {
        model.clone_into(&mut ctx.upstream_model);
        let err = build_request(&ctx, &chat(json!({}))).expect_err(model);
        assert_eq!(err.class, ErrorClass::BadRequest, "{model:?}");
    }
}

#[test]
fn invalid_options_fail_the_request() {
    let ctx = RequestContext {
        provider: provider(BASE, json!({"nope": 1})),
        ..ctx(false)
    };
    let err = build_request(&ctx, &chat(json!({}))).expect_err("bad options");
    assert_eq!(err.class, ErrorClass::BadRequest);
}

#[test]
fn embeddings_are_unsupported() {
    let ctx = RequestContext {
        operation: Operation::Embeddings,
        ..ctx(false)
    };
    let err = build_request(&ctx, &json!({"input": "x"})).expect_err("unsupported");
    assert_eq!((err.class, err.retryable), (ErrorClass::Unsupported, true));
}

#[test]
fn safety_settings_are_sent_as_configured() {
    let settings =
        json!([{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_NONE"}]);
    let ctx = RequestContext {
        provider: provider(BASE, json!({"safety_settings": settings})),
        ..ctx(false)
    };
    let body = body_of(&build_request(&ctx, &chat(json!({}))).expect("request"));
    assert_eq!(body["safetySettings"], settings);
}

// ---------------------------------------------------------------- native form

#[test]
fn native_bodies_are_forwarded_untouched() {
    let payload = json!({"contents": [{"parts": [{"text": "hi"}]}], "unknownField": {"z": 1}});
    let request = build_request(&native_ctx(false), &payload).expect("request");
    assert_eq!(request.body, RequestBody::Forward(Vec::new()));
    assert!(
        request
            .url
            .ends_with("/models/gemini-2.5-flash:generateContent")
    );
    let request = build_request(&native_ctx(true), &payload).expect("request");
    assert_eq!(request.body, RequestBody::Forward(Vec::new()));
    assert!(request.url.ends_with(":streamGenerateContent?alt=sse"));
    // Native bodies are not parsed: even options' safety settings stay out.
    let ctx = RequestContext {
        provider: provider(BASE, json!({"safety_settings": []})),
        ..native_ctx(false)
    };
    let request = Gemini::build_request(&ctx, "{not even json").expect("request");
    assert_eq!(request.body, RequestBody::Forward(Vec::new()));
}

#[test]
fn native_count_tokens_names_the_upstream_model() {
    let ctx = RequestContext {
        operation: Operation::CountTokens,
        ..native_ctx(false)
    };
    let payload = r#"{"generateContentRequest":{"model":"models/my-alias","contents":[{"parts":[{"text":"hi"}]}]}}"#;
    let request = Gemini::build_request(&ctx, payload).expect("request");
    assert!(
        request
            .url
            .ends_with("/models/gemini-2.5-flash:countTokens")
    );
    assert_eq!(
        request.body,
        RequestBody::Forward(vec![JsonEdit::set_raw(
            "generateContentRequest",
            r#"{"model":"models/gemini-2.5-flash","contents":[{"parts":[{"text":"hi"}]}]}"#
        )])
    );
    // The plain `contents` form needs no edit.
    let request = Gemini::build_request(&ctx, r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
        .expect("request");
    assert_eq!(request.body, RequestBody::Forward(Vec::new()));
    let err = Gemini::build_request(&ctx, "[]").expect_err("not an object");
    assert_eq!(err.class, ErrorClass::BadRequest);
}

// ------------------------------------------------------------------- messages

#[test]
fn system_and_developer_messages_become_the_system_instruction() {
    let body = build(&json!({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}, {"type": "text", "text": ""}]},
    ]}));
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}, {"text": "Use French."}]})
    );
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}]}])
    );

    let err = build_err(&json!({"messages": [
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
        {"role": "user", "content": "hi"},
    ]}));
    assert_eq!(err.class, ErrorClass::Unsupported);
    assert!(err.message.contains("`image_url`"), "{}", err.message);
}

#[test]
fn empty_messages_are_skipped() {
    let body = build(&json!({"messages": [
        {"role": "user", "content": ""},
        {"role": "assistant", "content": null},
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        {"role": "assistant", "content": []},
    ]}));
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "hello"}]}])
    );

    let err =
        build_err(&json!({"messages": [{"role": "system", "content": "only a system prompt"}]}));
    assert_eq!(
        (err.class, err.param.as_deref()),
        (ErrorClass::BadRequest, Some("messages"))
    );
    let err = build_err(&json!({"model": "x"}));
    assert_eq!(err.class, ErrorClass::BadRequest);
}

#[test]
fn media_parts() {
    let body = build(&json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "image_url", "image_url": "https://x.test/photo"},
        {"type": "image_url", "image_url": {"url": "HTTPS://x.test/scan.PDF#page=2"}},
        {"type": "image_url", "image_url": {"url": "http://x.test/a.gif"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
        {"type": "image_url", "image_url": {"url": "data:image/png;charset=binary;base64,iVBOR"}},
    ]}]}));
    assert_eq!(
        body["contents"][0]["parts"],
        json!([
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/photo"}},
            {"fileData": {"mimeType": "application/pdf", "fileUri": "HTTPS://x.test/scan.PDF#page=2"}},
            {"fileData": {"mimeType": "image/gif", "fileUri": "http://x.test/a.gif"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
            {"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
            {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
        ])
    );
}

#[test]
fn bad_media_parts() {
    let user = |part: Value| json!({"messages": [{"role": "user", "content": [part]}]});
    for (part, class) in [
        (
            json!({"type": "image_url", "image_url": {"url": "ftp://x.test/a.png"}}),
            ErrorClass::BadRequest,
        ),
        (
            json!({"type": "image_url", "image_url": {"url": "data:image/png,abc"}}),
            ErrorClass::BadRequest,
        ),
        (
            json!({"type": "image_url", "image_url": {"url": "data:;base64,abc"}}),
            ErrorClass::BadRequest,
        ),
        (
            json!({"type": "image_url", "image_url": {}}),
            ErrorClass::BadRequest,
        ),
        (
            json!({"type": "input_audio", "input_audio": {"data": "x"}}),
            ErrorClass::BadRequest,
        ),
        (
            json!({"type": "input_audio", "input_audio": {"data": "x", "format": "flac"}}),
            ErrorClass::Unsupported,
        ),
        (
            json!({"type": "file", "file": {"file_id": "file-abc"}}),
            ErrorClass::Unsupported,
        ),
        (
            json!({"type": "video_url", "video_url": {"url": "https://x.test/v.mp4"}}),
            ErrorClass::Unsupported,
        ),
    ] {
        let err = build_err(&user(part.clone()));
        assert_eq!(err.class, class, "{part}: {}", err.message);
    }
    let err = build_err(&json!({"messages": [{"role": "user", "content": 42}]}));
    assert_eq!(err.param.as_deref(), Some("messages[0].content"));
}

#[test]
fn tool_results_merge_into_one_turn_until_another_message() {
    let body = build(&json!({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "a", "content": "[1,2]"},
        {"role": "tool", "tool_call_id": "b", "content": "{\"ok\":true}"},
        {"role": "user", "content": "and?"},
        {"role": "tool", "tool_call_id": "call_7_lookup", "content": "late"},
    ]}));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "go"}]},
            {"role": "model", "parts": [
                {"functionCall": {"id": "a", "name": "f", "args": {}}},
                {"functionCall": {"id": "b", "name": "g", "args": {}}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "a", "name": "f", "response": {"result": "[1,2]"}}},
                {"functionResponse": {"id": "b", "name": "g", "response": {"ok": true}}},
            ]},
            {"role": "user", "parts": [{"text": "and?"}]},
            // Unknown id, but a generated one: the name is in it.
            {"role": "user", "parts": [
                {"functionResponse": {"id": "call_7_lookup", "name": "lookup", "response": {"result": "late"}}},
            ]},
        ])
    );
}

#[test]
fn tool_message_errors() {
    let messages = |tool: Value| {
        json!({"messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            tool,
        ]})
    };
    let err = build_err(&messages(
        json!({"role": "tool", "tool_call_id": "zzz", "content": "x"}),
    ));
    assert_eq!(err.class, ErrorClass::BadRequest);
    assert_eq!(err.param.as_deref(), Some("messages[2].tool_call_id"));
    assert!(err.message.contains("`zzz`"), "{}", err.message);
    for id in ["call_x_f", "call__f", "call_1_"] {
        let err = build_err(&messages(
            json!({"role": "tool", "tool_call_id": id, "content": "x"}),
        ));
        assert_eq!(err.class, ErrorClass::BadRequest, "{id}");
    }
    let err = build_err(&messages(json!({"role": "tool", "content": "x"})));
    assert_eq!(err.param.as_deref(), Some("messages[2].tool_call_id"));
    let err = build_err(&messages(
        json!({"role": "tool", "tool_call_id": "a", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}),
    ));
    assert_eq!(err.class, ErrorClass::Unsupported);
}

#[test]
fn tool_call_arguments() {
    // Key order survives; an object (instead of JSON text) is accepted too.
    let payload = r#"{"messages":[{"role":"user","content":"go"},{"role":"assistant","tool_calls":[
        {"id":"a","type":"function","function":{"name":"f","arguments":"{\"zeta\":1,\"alpha\":{\"y\":2,\"b\":3}}"}},
        {"id":"b","function":{"name":"g","arguments":{"k2":"v","k1":null}}}]}]}"#;
    let request = Gemini::build_request(&ctx(false), payload).expect("request");
    let text = body_text(&request);
    assert!(
        text.contains(
            r#"{"functionCall":{"id":"a","name":"f","args":{"zeta":1,"alpha":{"y":2,"b":3}}}}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"{"functionCall":{"id":"b","name":"g","args":{"k2":"v","k1":null}}}"#),
        "{text}"
    );
    for arguments in [json!("not json"), json!("[1]"), json!(7)] {
        let err = build_err(&json!({"messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
        ]}));
        assert_eq!(err.class, ErrorClass::BadRequest, "{arguments}");
        assert_eq!(
            err.param.as_deref(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
    }
    let err = build_err(&json!({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "a", "type": "custom", "custom": {"name": "f", "input": "x"}}]},
    ]}));
    assert_eq!(err.class, ErrorClass::Unsupported);
}

#[test]
fn thinking_blocks_on_the_way_back() {
    let body = build(&json!({"messages": [
        {"role": "user", "content": "go"},
        // A signature-only block with no text to carry it: dropped, no empty part.
        {"role": "assistant", "thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "s0"}],
         "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "ok"},
        // Two texts: only the first gets the signature; empty signatures and
        // blocks of other types are ignored.
        {"role": "assistant", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
         "reasoning_content": "ignored without blocks",
         "thinking_blocks": [
            {"type": "thinking", "thinking": "", "signature": "s1"},
            {"type": "thinking", "thinking": "", "signature": "s2"},
            {"type": "thinking", "thinking": "t", "signature": ""},
            {"type": "redacted_thinking", "data": "d"},
            {"type": "other", "signature": "s3"}]},
        {"role": "user", "content": "next"},
        {"role": "assistant", "content": "plain", "reasoning_content": "no blocks: nothing to send"},
    ]}));
    assert_eq!(
        body["contents"][1],
        json!({"role": "model", "parts": [{"functionCall": {"id": "a", "name": "f", "args": {}}}]})
    );
    assert_eq!(
        body["contents"][3],
        json!({"role": "model", "parts": [{"text": "one", "thoughtSignature": "s1"}, {"text": "two"}]})
    );
    assert_eq!(
        body["contents"][5],
        json!({"role": "model", "parts": [{"text": "plain"}]})
    );
}

#[test]
fn unknown_roles_and_legacy_fields() {
    let err = build_err(&json!({"messages": [{"role": "robot", "content": "x"}]}));
    assert_eq!(
        (err.class, err.param.as_deref()),
        (ErrorClass::BadRequest, Some("messages[0]"))
    );
    let err = build_err(&json!({"messages": [{"role": "function", "name": "f", "content": "x"}]}));
    assert_eq!(err.class, ErrorClass::Unsupported);
    let err = build_err(&json!({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]}));
    assert_eq!(err.class, ErrorClass::Unsupported);
    let err = build_err(&json!({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "audio": {"id": "audio_1"}}]}));
    assert_eq!(err.class, ErrorClass::Unsupported);
    let err = Gemini::build_request(&ctx(false), "{\"messages\": [").expect_err("invalid");
    assert_eq!(err.class, ErrorClass::BadRequest);
    let err = build_err(&json!({"messages": "hi"}));
    assert_eq!(err.class, ErrorClass::BadRequest);
}

// ---------------------------------------------------------------------- tools

#[test]
fn tool_choice_modes() {
    let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}]);
    for (choice, config) in [
        (
            json!("auto"),
            json!({"functionCallingConfig": {"mode": "AUTO"}}),
        ),
        (
            json!("none"),
            json!({"functionCallingConfig": {"mode": "NONE"}}),
        ),
        (
            json!("required"),
            json!({"functionCallingConfig": {"mode": "ANY"}}),
        ),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}),
        ),
        (Value::Null, Value::Null),
    ] {
        let body = build(&chat(json!({"tools": tools, "tool_choice": choice})));
        assert_eq!(
            body.get("toolConfig").cloned().unwrap_or(Value::Null),
            config,
            "{choice}"
        );
    }
    // Without tools there is nothing to configure.
    let body = build(&chat(json!({"tool_choice": "required", "tools": []})));
    assert_eq!(body.get("toolConfig"), None);
    assert_eq!(body.get("tools"), None);

    let err = build_err(&chat(json!({"tools": tools, "tool_choice": "sometimes"})));
    assert_eq!(
        (err.class, err.param.as_deref()),
        (ErrorClass::BadRequest, Some("tool_choice"))
    );
    let err = build_err(&chat(json!({"tools": tools, "tool_choice": 1})));
    assert_eq!(err.class, ErrorClass::BadRequest);
    let err = build_err(&chat(
        json!({"tools": tools, "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}}),
    ));
    assert_eq!(err.class, ErrorClass::Unsupported);
}

#[test]
fn tool_declarations() {
    let body = build(&chat(json!({"tools": [
        {"type": "function", "function": {"name": "no_params"}},
        {"type": "function", "function": {"name": "empty", "description": "", "parameters": {"type": "object", "properties": {}, "additionalProperties": false}}},
        {"type": "function", "function": {"name": "free", "parameters": {}}},
    ]})));
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [{"name": "no_params"}, {"name": "empty"}, {"name": "free"}]}])
    );
    let err = build_err(&chat(json!({"tools": [{"type": "web_search_preview"}]})));
    assert_eq!(err.class, ErrorClass::Unsupported);
    assert!(
        err.message.contains("`web_search_preview`"),
        "{}",
        err.message
    );
    let err = build_err(&chat(json!({"tools": [{"type": "function"}]})));
    assert_eq!(
        (err.class, err.param.as_deref()),
        (ErrorClass::BadRequest, Some("tools[0]"))
    );
}

// ---------------------------------------------------------- generation config

#[test]
fn generation_config_fields() {
    let body = build(&chat(json!({
        "max_tokens": 100, "stop": "###", "top_k": 40, "n": 1, "seed": -7,
        "response_format": {"type": "text"},
    })));
    assert_eq!(
        body["generationConfig"],
        json!({"stopSequences": ["###"], "candidateCount": 1, "maxOutputTokens": 100, "topK": 40, "seed": -7})
    );
    // max_completion_tokens wins over max_tokens; huge values saturate.
    let body = build(&chat(
        json!({"max_tokens": 5, "max_completion_tokens": 99_999_999_999_u64}),
    ));
    assert_eq!(body["generationConfig"]["maxOutputTokens"], json!(i32::MAX));
    let body = build(&chat(
        json!({"stop": [], "response_format": null, "temperature": null}),
    ));
    assert_eq!(body.get("generationConfig"), None);

    let err = build_err(&chat(json!({"stop": [1]})));
    assert_eq!(err.param.as_deref(), Some("stop"));
    let err = build_err(&chat(json!({"response_format": {"type": "xml"}})));
    assert_eq!(err.param.as_deref(), Some("response_format"));
    let err = build_err(&chat(json!({"seed": 1_i64 << 40})));
    assert_eq!(err.class, ErrorClass::Unsupported);
    let err = build_err(&chat(json!({"temperature": "hot"})));
    assert_eq!(err.class, ErrorClass::BadRequest);
}

#[test]
fn thinking_configuration() {
    let config = |extra: Value| build(&chat(extra))["generationConfig"]["thinkingConfig"].clone();
    assert_eq!(
        config(json!({"reasoning_effort": "none"})),
        json!({"thinkingBudget": 0})
    );
    assert_eq!(
        config(json!({"reasoning_effort": "minimal"})),
        json!({"includeThoughts": true, "thinkingBudget": 512})
    );
    assert_eq!(
        config(json!({"reasoning_effort": "medium"})),
        json!({"includeThoughts": true, "thinkingBudget": 8192})
    );
    assert_eq!(
        config(json!({"thinking": {"type": "adaptive"}})),
        json!({"includeThoughts": true, "thinkingBudget": -1})
    );
    assert_eq!(
        config(json!({"thinking": {"type": "disabled"}, "reasoning_effort": "high"})),
        json!({"thinkingBudget": 0})
    );
    assert_eq!(
        config(
            json!({"thinking": {"type": "enabled", "budget_tokens": 0}, "reasoning_effort": "high"})
        ),
        json!({"includeThoughts": true, "thinkingBudget": 0})
    );
    assert_eq!(config(json!({})), Value::Null);
    for (extra, param) in [
        (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
        (
            json!({"thinking": {"type": "enabled"}}),
            "thinking.budget_tokens",
        ),
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": -5}}),
            "thinking.budget_tokens",
        ),
        (json!({"thinking": {"type": "sometimes"}}), "thinking.type"),
    ] {
        let err = build_err(&chat(extra));
        assert_eq!(
            (err.class, err.param.as_deref()),
            (ErrorClass::BadRequest, Some(param))
        );
    }
}

#[test]
fn response_schema_keeps_the_property_order() {
    let payload = r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema",
        "json_schema":{"name":"r","schema":{"type":"object","properties":{"reasoning":{"type":"string"},
        "answer":{"type":"object","properties":{"value":{"type":"number"},"unit":{"type":"string"}}}},
        "required":["reasoning","answer"],"additionalProperties":false}}}}"#;
    let request = Gemini::build_request(&ctx(false), payload).expect("request");
    let text = body_text(&request);
    assert!(
        text.contains(r#""generationConfig":{"responseMimeType":"application/json","responseSchema":{"type":"OBJECT","properties":{"reasoning":{"type":"STRING"},"answer":{"type":"OBJECT","properties":{"value":{"type":"NUMBER"},"unit":{"type":"STRING"}},"propertyOrdering":["value","unit"]}},"required":["reasoning","answer"],"propertyOrdering":["reasoning","answer"]}}"#),
        "{text}"
    );
    // Tool parameters keep the order too, without propertyOrdering.
    let payload = r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f",
        "parameters":{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"string"}}}}}]}"#;
    let text = body_text(&Gemini::build_request(&ctx(false), payload).expect("request"));
    assert!(
        text.contains(r#""parameters":{"type":"OBJECT","properties":{"zeta":{"type":"STRING"},"alpha":{"type":"STRING"}}}"#),
        "{text}"
    );
    // json_schema without a schema is plain JSON mode.
    let body = build(&chat(
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
    ));
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
}

#[test]
fn unsupported_features_are_refused_by_name() {
    for (extra, feature) in [
        (json!({"logprobs": true}), "`logprobs`"),
        (json!({"top_logprobs": 3}), "`logprobs`"),
        (json!({"logit_bias": {"50256": -100}}), "`logit_bias`"),
        (json!({"modalities": ["text", "audio"]}), "audio output"),
        (
            json!({"audio": {"voice": "alloy", "format": "wav"}}),
            "audio output",
        ),
        (json!({"web_search_options": {}}), "`web_search_options`"),
        (json!({"functions": [{"name": "f"}]}), "`functions`"),
    ] {
        let err = build_err(&chat(extra.clone()));
        assert_eq!(
            (err.class, err.retryable),
            (ErrorClass::Unsupported, true),
            "{extra}"
        );
        assert!(err.message.contains(feature), "{extra}: {}", err.message);
    }
    // Neutral values are fine.
    let body = build(&chat(json!({
        "logprobs": false, "logit_bias": {}, "modalities": ["text"], "parallel_tool_calls": false,
        "stream_options": {"include_usage": true}, "metadata": {"k": "v"}, "prediction": {"type": "content", "content": "x"},
        "service_tier": "auto", "top_logprobs": null,
    })));
    assert_eq!(
        body,
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    );
}

#[test]
fn build_request_is_pure() {
    let payload = chat(json!({"temperature": 0.5}));
    let first = build_request(&ctx(false), &payload).expect("request");
    let second = build_request(&ctx(false), &payload).expect("request");
    assert_eq!(first, second);
}

//! `decode_request`.

use orch_plugin_sdk::{Dialect, ErrorClass, IngressRequest, Operation};
use serde_json::json;

use super::{decode, decode_error, decoded, decoded_text, ingress};
use crate::Gemini;

const HI: &str = r#"{"contents":[{"parts":[{"text":"Hi"}]}]}"#;

// ------------------------------------------------------------ envelope

#[test]
fn rejects_bodies_that_are_not_json_objects() {
    for body in ["", "{", "[1]", "\"text\"", "null", "{\"contents\":[]} x"] {
        let err = decode_error(body);
        assert_eq!(err.class, ErrorClass::BadRequest, "{body}");
        assert!(!err.retryable);
        assert!(
            err.message.starts_with("Invalid JSON payload"),
            "{}",
            err.message
        );
    }
}

#[test]
fn model_comes_from_the_path_then_the_body() {
    let decoded = decode(HI).expect("decoded");
    assert_eq!(decoded.model, "gemini-2.5-flash");
    assert!(!decoded.streaming);

    let request = IngressRequest {
        path_model: None,
        body: br#"{"model":"models/gemini-pro","contents":[{"parts":[{"text":"Hi"}]}]}"#.to_vec(),
        ..ingress(HI)
    };
    assert_eq!(
        Gemini::decode_request(&request).expect("decoded").model,
        "gemini-pro"
    );

    let request = IngressRequest {
        path_model: None,
        ..ingress(HI)
    };
    let err = Gemini::decode_request(&request).expect_err("no model");
    assert_eq!(
        (err.class, err.param.as_deref()),
        (ErrorClass::BadRequest, Some("model"))
    );
}

#[test]
fn streaming_follows_the_endpoint_only() {
    let request = IngressRequest {
        endpoint_streams: Some(false),
        ..ingress(r#"{"stream":true,"contents":[{"parts":[{"text":"Hi"}]}]}"#)
    };
    let decoded = Gemini::decode_request(&request).expect("decoded");
    assert!(!decoded.streaming);
    assert!(!decoded.body.contains("stream"));

    let request = IngressRequest {
        operation: Operation::CountTokens,
        endpoint_streams: Some(true),
        ..ingress(HI)
    };
    let decoded = Gemini::decode_request(&request).expect("decoded");
    assert!(!decoded.streaming, "counting never streams");
}

#[test]
fn count_tokens_takes_one_body_shape() {
    let request = IngressRequest {
        operation: Operation::CountTokens,
        ..ingress(
            r#"{"contents":[{"parts":[{"text":"a"}]}],"generateContentRequest":{"contents":[{"parts":[{"text":"b"}]}]}}"#,
        )
    };
    let err = Gemini::decode_request(&request).expect_err("both");
    assert_eq!(err.param.as_deref(), Some("generateContentRequest"));

    let request = IngressRequest {
        operation: Operation::CountTokens,
        ..ingress(r#"{"generateContentRequest":{"contents":[]}}"#)
    };
    let err = Gemini::decode_request(&request).expect_err("empty");
    assert_eq!(
        err.param.as_deref(),
        Some("generateContentRequest.contents")
    );
}

#[test]
fn embeddings_are_unsupported() {
    let request = IngressRequest {
        operation: Operation::Embeddings,
        ..ingress(HI)
    };
    let err = Gemini::decode_request(&request).expect_err("embeddings");
    assert_eq!(err.class, ErrorClass::Unsupported);
}

// --------------------------------------------------------------- order

#[test]
fn keeps_the_clients_key_order_where_it_matters() {
    let body = r#"{"contents":[
        {"role":"user","parts":[{"text":"q"}]},
        {"role":"model","parts":[{"functionCall":{"name":"f","args":{"zeta":1,"alpha":{"y":2,"b":3}}}}]},
        {"role":"user","parts":[{"functionResponse":{"name":"f","response":{"z":true,"a":[1,"x"]}}}]}],
      "tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"OBJECT","properties":{"zeta":{"type":"INTEGER"},"alpha":{"type":"OBJECT"}}}}]}],
      "generationConfig":{"responseMimeType":"application/json","responseJsonSchema":{"type":"object","properties":{"reasoning":{"type":"string"},"answer":{"type":"string"}}}}}"#;
    let text = decoded_text(body);
    assert!(
        text.contains(r#""arguments":"{\"zeta\":1,\"alpha\":{\"y\":2,\"b\":3}}""#),
        "{text}"
    );
    assert!(
        text.contains(r#""content":"{\"z\":true,\"a\":[1,\"x\"]}""#),
        "{text}"
    );
    assert!(
        text.contains(r#""properties":{"zeta":{"type":"integer"},"alpha":{"type":"object"}}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""properties":{"reasoning":{"type":"string"},"answer":{"type":"string"}}"#),
        "{text}"
    );
    // The canonical fields themselves come in a readable order.
    assert!(
        text.starts_with(r#"{"model":"gemini-2.5-flash","messages":["#),
        "{text}"
    );
}

// ------------------------------------------------------------- contents

#[test]
fn validates_contents_and_parts() {
    let cases = [
        (r#"{"contents":{}}"#, "contents[0].parts"),
        (r#"{"contents":["text"]}"#, "contents[0]"),
        (r#"{"contents":[{"parts":[{}]}]}"#, "contents[0].parts[0]"),
        (
            r#"{"contents":[{"parts":[{"thought":true}]}]}"#,
            "contents[0].parts[0]",
        ),
        (
            r#"{"contents":[{"parts":[{"text":1}]}]}"#,
            "contents[0].parts[0].text",
        ),
        (
            r#"{"contents":[{"role":"system","parts":[{"text":"x"}]}]}"#,
            "contents[0].role",
        ),
        (
            r#"{"contents":[{"parts":[{"inlineData":{"data":"AA=="}}]}]}"#,
            "contents[0].parts[0].inlineData.mimeType",
        ),
        (
            r#"{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png"}}]}]}"#,
            "contents[0].parts[0].inlineData.data",
        ),
        (
            r#"{"contents":[{"parts":[{"fileData":{"mimeType":"image/png"}}]}]}"#,
            "contents[0].parts[0].fileData.fileUri",
        ),
        (
            r#"{"contents":[{"parts":[{"functionCall":{"name":"f"}}]}]}"#,
            "contents[0].parts[0].functionCall",
        ),
        (
            r#"{"contents":[{"role":"model","parts":[{"functionResponse":{"name":"f"}}]}]}"#,
            "contents[0].parts[0].functionResponse",
        ),
        (
            r#"{"contents":[{"role":"model","parts":[{"functionCall":{"args":{}}}]}]}"#,
            "contents[0].parts[0].functionCall.name",
        ),
        (
            r#"{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f","args":[1]}}]}]}"#,
            "contents[0].parts[0].functionCall.args",
        ),
        (
            r#"{"contents":[{"parts":[{"text":"x"}]}],"systemInstruction":"be nice"}"#,
            "systemInstruction",
        ),
    ];
    for (body, param) in cases {
        let err = decode_error(body);
        assert_eq!(err.class, ErrorClass::BadRequest, "{body}: {err:?}");
        assert_eq!(err.param.as_deref(), Some(param), "{body}: {}", err.message);
    }
}

#[test]
fn refuses_what_has_no_canonical_form() {
    let cases = [
        (
            r#"{"contents":[{"parts":[{"executableCode":{"language":"PYTHON","code":"1"}}]}]}"#,
            "contents[0].parts[0].executableCode",
        ),
        (
            r#"{"contents":[{"parts":[{"fileData":{"fileUri":"gs://b/a.mp4","mimeType":"video/mp4"}}]}]}"#,
            "contents[0].parts[0].fileData.mimeType",
        ),
        (
            r#"{"contents":[{"parts":[{"fileData":{"fileUri":"https://generativelanguage.googleapis.com/v1beta/files/x"}}]}]}"#,
            "contents[0].parts[0].fileData.mimeType",
        ),
        (
            r#"{"contents":[{"role":"model","parts":[{"inlineData":{"mimeType":"image/png","data":"AA=="}}]}]}"#,
            "contents[0].parts[0]",
        ),
        (
            r#"{"contents":[{"parts":[{"text":"x"}]}],"systemInstruction":{"parts":[{"inlineData":{"mimeType":"image/png","data":"AA=="}}]}}"#,
            "systemInstruction.parts[0]",
        ),
        (
            r#"{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f"}}]},{"parts":[{"functionResponse":{"name":"f","parts":[{"inlineData":{"mimeType":"image/png","data":"AA=="}}]}}]}]}"#,
            "contents[1].parts[0].functionResponse.parts",
        ),
        (
            r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"code_execution":{}}]}"#,
            "tools[0].codeExecution",
        ),
        (
            r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"responseLogprobs":true,"logprobs":3}}"#,
            "generationConfig.responseLogprobs",
        ),
        (
            r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"responseMimeType":"text/x.enum","responseSchema":{"type":"STRING","enum":["a"]}}}"#,
            "generationConfig.responseMimeType",
        ),
    ];
    for (body, param) in cases {
        let err = decode_error(body);
        assert_eq!(err.class, ErrorClass::Unsupported, "{body}: {err:?}");
        assert_eq!(err.param.as_deref(), Some(param), "{body}: {}", err.message);
    }
}

#[test]
fn file_data_without_mime_type_is_an_image_by_extension() {
    let body = r#"{"contents":[{"parts":[{"fileData":{"fileUri":"gs://bucket/cat.webp"}}]}]}"#;
    assert_eq!(
        decoded(body)["messages"][0]["content"],
        json!([{"type": "image_url", "image_url": {"url": "gs://bucket/cat.webp"}}])
    );
}

#[test]
fn user_thought_flags_and_signatures_are_ignored() {
    let body = r#"{"contents":[{"parts":[{"text":"a","thought":true,"thoughtSignature":"c2ln"},{"thoughtSignature":"c2ln"}]}]}"#;
    assert_eq!(
        decoded(body)["messages"],
        json!([{"role": "user", "content": "a"}])
    );
}

// ------------------------------------------------------- function results

#[test]
fn results_with_ids_claim_their_calls_before_results_by_name() {
    let body = r#"{"contents":[
        {"parts":[{"text":"q"}]},
        {"role":"model","parts":[
            {"functionCall":{"id":"a","name":"f","args":{}}},
            {"functionCall":{"id":"b","name":"f","args":{}}}]},
        {"parts":[
            {"functionResponse":{"name":"f","response":{"result":"for a"}}},
            {"functionResponse":{"id":"a","name":"f","response":{"result":"also a"}}}]}]}"#;
    let messages = &decoded(body)["messages"];
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "b", "content": "for a"})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "a", "content": "also a"})
    );
}

#[test]
fn results_must_answer_the_previous_model_turn() {
    // Too many results for the calls.
    let body = r#"{"contents":[{"parts":[{"text":"q"}]},
        {"role":"model","parts":[{"functionCall":{"name":"f"}}]},
        {"parts":[{"functionResponse":{"name":"f","response":{}}},{"functionResponse":{"name":"f","response":{}}}]}]}"#;
    let err = decode_error(body);
    assert_eq!(
        err.param.as_deref(),
        Some("contents[2].parts[1].functionResponse")
    );
    // A result in the first turn.
    let err = decode_error(
        r#"{"contents":[{"parts":[{"functionResponse":{"name":"f","response":{}}}]}]}"#,
    );
    assert_eq!(
        err.param.as_deref(),
        Some("contents[0].parts[0].functionResponse")
    );
    // Neither a name nor an id.
    let err = decode_error(
        r#"{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f"}}]},{"parts":[{"functionResponse":{"response":{}}}]}]}"#,
    );
    assert_eq!(
        err.param.as_deref(),
        Some("contents[1].parts[0].functionResponse.name")
    );
    // A result with an id is kept verbatim even if no call has it.
    let messages = decoded(
        r#"{"contents":[{"parts":[{"functionResponse":{"id":"x9","name":"f","response":{"output":"done"}}}]}]}"#,
    );
    assert_eq!(
        messages["messages"],
        json!([{"role": "tool", "tool_call_id": "x9", "content": "done"}])
    );
}

#[test]
fn generated_ids_count_calls_across_merged_model_contents() {
    let body = r#"{"contents":[{"parts":[{"text":"q"}]},
        {"role":"model","parts":[{"functionCall":{"name":"a","args":{}}}]},
        {"role":"model","parts":[{"functionCall":{"name":"b"}}]},
        {"parts":[{"functionResponse":{"name":"b","response":{"result":1}}},{"functionResponse":{"name":"a","response":{"result":"x"}}}]}]}"#;
    let messages = &decoded(body)["messages"];
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_0_a");
    assert_eq!(messages[1]["tool_calls"][1]["id"], "call_1_b");
    assert_eq!(messages[1]["tool_calls"][1]["function"]["arguments"], "{}");
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "call_1_b", "content": "{\"result\":1}"})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_0_a", "content": "x"})
    );
}

// ------------------------------------------------------------- thinking

#[test]
fn thinking_blocks_from_thoughts_and_signatures() {
    let body = r#"{"contents":[{"parts":[{"text":"q"}]},{"role":"model","parts":[
        {"text":"plan A","thought":true,"thoughtSignature":"s1"},
        {"text":"plan B","thought":true},
        {"text":"Hello","thoughtSignature":"s2"},
        {"thoughtSignature":"s3"},
        {"text":" world"}]}]}"#;
    assert_eq!(
        decoded(body)["messages"][1],
        json!({
            "role": "assistant",
            "content": "Hello world",
            "reasoning_content": "plan Aplan B",
            "thinking_blocks": [
                {"type": "thinking", "thinking": "plan A", "signature": "s1"},
                {"type": "thinking", "thinking": "plan B"},
                {"type": "thinking", "thinking": "", "signature": "s2"},
                {"type": "thinking", "thinking": "", "signature": "s3"}
            ]
        })
    );
}

#[test]
fn url_safe_signatures_get_their_standard_alphabet_back() {
    // google-genai sends `bytes` fields in URL-safe base64.
    let body = r#"{"contents":[{"parts":[{"text":"q"}]},{"role":"model","parts":[
        {"text":"t","thought":true,"thoughtSignature":"Cp-B_d=="},
        {"functionCall":{"name":"f"},"thoughtSignature":"Eq_U-C"},
        {"text":"a","thoughtSignature":"Ab+/cd=="},
        {"thoughtSignature":"not base64: -_"},
        {"thoughtSignature":"x_y+z"}]}]}"#;
    let message = &decoded(body)["messages"][1];
    assert_eq!(
        message["thinking_blocks"],
        json!([
            {"type": "thinking", "thinking": "t", "signature": "Cp+B/d=="},
            {"type": "thinking", "thinking": "", "signature": "Ab+/cd=="},
            {"type": "thinking", "thinking": "", "signature": "not base64: -_"},
            {"type": "thinking", "thinking": "", "signature": "x_y+z"}
        ])
    );
    assert_eq!(
        message["tool_calls"][0]["extra_content"],
        json!({"google": {"thought_signature": "Eq/U+C"}})
    );
}

#[test]
fn a_model_turn_of_thoughts_only_has_empty_content() {
    let body = r#"{"contents":[{"parts":[{"text":"q"}]},{"role":"model","parts":[{"text":"hmm","thought":true}]}]}"#;
    let message = &decoded(body)["messages"][1];
    assert_eq!(message["content"], "");
    assert_eq!(
        message["thinking_blocks"],
        json!([{"type": "thinking", "thinking": "hmm"}])
    );
}

#[test]
fn thinking_config() {
    let config = |config: &str| {
        decoded(&format!(
            r#"{{"contents":[{{"parts":[{{"text":"q"}}]}}],"generationConfig":{{"thinkingConfig":{config}}}}}"#
        ))
    };
    let body = config(r#"{"thinkingBudget":2048,"includeThoughts":true}"#);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    let body = config(r#"{"thinkingBudget":-1}"#);
    assert!(body.get("thinking").is_none());
    let body = config(r#"{"thinking_level":"HIGH"}"#);
    assert_eq!(body["reasoning_effort"], "high");
    assert!(body.get("thinking").is_none());
    let body = config(r#"{"thinkingLevel":"THINKING_LEVEL_UNSPECIFIED"}"#);
    assert!(body.get("reasoning_effort").is_none());
    let err = decode_error(
        r#"{"contents":[{"parts":[{"text":"q"}]}],"generationConfig":{"thinkingConfig":{"thinkingLevel":"ultra"}}}"#,
    );
    assert_eq!(
        err.param.as_deref(),
        Some("generationConfig.thinkingConfig.thinkingLevel")
    );
}

// ----------------------------------------------------------------- tools

fn with_tools(tool_config: &str) -> String {
    format!(
        r#"{{"contents":[{{"parts":[{{"text":"q"}}]}}],
        "tools":[{{"functionDeclarations":[{{"name":"a"}},{{"name":"b"}}]}},{{"function_declarations":{{"name":"c"}}}}],
        "toolConfig":{tool_config}}}"#
    )
}

fn tool_names(body: &serde_json::Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| {
                    t["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn function_calling_modes() {
    let cases = [
        (
            r#"{"functionCallingConfig":{"mode":"AUTO"}}"#,
            json!("auto"),
            vec!["a", "b", "c"],
        ),
        (
            r#"{"functionCallingConfig":{"mode":"NONE"}}"#,
            json!("none"),
            vec!["a", "b", "c"],
        ),
        (
            r#"{"functionCallingConfig":{"mode":"any"}}"#,
            json!("required"),
            vec!["a", "b", "c"],
        ),
        (
            r#"{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["c","a"]}}"#,
            json!("required"),
            vec!["a", "c"],
        ),
        (
            r#"{"functionCallingConfig":{"mode":"VALIDATED","allowed_function_names":["b"]}}"#,
            json!("auto"),
            vec!["b"],
        ),
        (
            r#"{"function_calling_config":{"mode":"ANY","allowedFunctionNames":["b"]}}"#,
            json!({"type": "function", "function": {"name": "b"}}),
            vec!["a", "b", "c"],
        ),
    ];
    for (config, choice, tools) in cases {
        let body = decoded(&with_tools(config));
        assert_eq!(body["tool_choice"], choice, "{config}");
        assert_eq!(tool_names(&body), tools, "{config}");
    }
    for config in [
        r#"{}"#,
        r#"{"functionCallingConfig":{"mode":"MODE_UNSPECIFIED"}}"#,
        r#"{"retrievalConfig":{}}"#,
    ] {
        let body = decoded(&with_tools(config));
        assert!(body.get("tool_choice").is_none(), "{config}");
    }
}

#[test]
fn function_calling_config_errors() {
    let err = decode_error(&with_tools(
        r#"{"functionCallingConfig":{"mode":"SOMETIMES"}}"#,
    ));
    assert_eq!(
        err.param.as_deref(),
        Some("toolConfig.functionCallingConfig.mode")
    );
    let err = decode_error(&with_tools(
        r#"{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["zz"]}}"#,
    ));
    assert_eq!(
        err.param.as_deref(),
        Some("toolConfig.functionCallingConfig.allowedFunctionNames")
    );
    let err = decode_error(
        r#"{"contents":[{"parts":[{"text":"q"}]}],"tools":[{"functionDeclarations":[{"name":"f","parameters":{},"parametersJsonSchema":{}}]}]}"#,
    );
    assert_eq!(
        err.param.as_deref(),
        Some("tools[0].functionDeclarations[0].parametersJsonSchema")
    );
    let err = decode_error(
        r#"{"contents":[{"parts":[{"text":"q"}]}],"tools":[{"functionDeclarations":[{"description":"x"}]}]}"#,
    );
    assert_eq!(
        err.param.as_deref(),
        Some("tools[0].functionDeclarations[0].name")
    );
}

#[test]
fn tool_choice_needs_tools() {
    let body = decoded(
        r#"{"contents":[{"parts":[{"text":"q"}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY"}}}"#,
    );
    assert!(body.get("tools").is_none());
    assert!(body.get("tool_choice").is_none());
}

// ----------------------------------------------------- generation config

#[test]
fn generation_config_accepts_protobuf_spellings() {
    let body = decoded(
        r#"{"contents":[{"parts":[{"text":"q"}]}],"generation_config":{"max_output_tokens":"64","candidate_count":1,"stop_sequences":"STOP","seed":-7,"response_modalities":["text"],"top_k":"40","top_p":"0.5"}}"#,
    );
    assert_eq!(body["top_k"], 40);
    assert_eq!(body["top_p"], 0.5);
    assert_eq!(body["max_completion_tokens"], 64);
    assert_eq!(body["n"], 1);
    assert_eq!(body["stop"], json!(["STOP"]));
    assert_eq!(body["seed"], -7);
}

#[test]
fn generation_config_type_errors_name_the_field() {
    let cases = [
        (
            r#"{"maxOutputTokens":"many"}"#,
            "generationConfig.maxOutputTokens",
        ),
        (r#"{"stopSequences":[1]}"#, "generationConfig.stopSequences"),
        (r#"{"topK":"forty"}"#, "generationConfig.topK"),
        (r#"{"temperature":"NaN"}"#, "generationConfig.temperature"),
        (
            r#"{"responseSchema":{"type":"STRING"},"responseJsonSchema":{}, "responseMimeType":"application/json"}"#,
            "generationConfig.responseJsonSchema",
        ),
        (
            r#"{"thinkingConfig":{"includeThoughts":"yes"}}"#,
            "generationConfig.thinkingConfig.includeThoughts",
        ),
        (r#"[]"#, "generationConfig"),
    ];
    for (config, param) in cases {
        let err = decode_error(&format!(
            r#"{{"contents":[{{"parts":[{{"text":"q"}}]}}],"generationConfig":{config}}}"#
        ));
        assert_eq!(err.class, ErrorClass::BadRequest, "{config}");
        assert_eq!(
            err.param.as_deref(),
            Some(param),
            "{config}: {}",
            err.message
        );
    }
}

#[test]
fn ignores_safety_settings_labels_and_output_only_settings() {
    let body = decoded(
        r#"{"contents":[{"parts":[{"text":"q"}]}],"safetySettings":[{"category":"HARM_CATEGORY_HATE_SPEECH","threshold":"BLOCK_NONE"}],"labels":{"team":"a"},
        "generationConfig":{"mediaResolution":"MEDIA_RESOLUTION_LOW","speechConfig":{"voiceConfig":{}},"responseModalities":["TEXT"]}}"#,
    );
    assert_eq!(
        body,
        json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "q"}]})
    );
}

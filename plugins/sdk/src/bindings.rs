//! The generated guest bindings, one module per WIT world.
//!
//! This is the only place in the plugin workspace where `wit_bindgen::generate!`
//! runs against the contract. Each world sits behind the cargo feature of the
//! same name. The static each module emits describes only the world's
//! *imports*; the full world (with its exports) is emitted by the export macro
//! in the plugin crate, so enabling several features in one build (cargo unifies
//! features across a workspace) does not make a plugin export more than its one
//! interface.

#[cfg(feature = "adapter")]
#[allow(
    unsafe_code,
    missing_docs,
    clippy::all,
    clippy::pedantic,
    reason = "generated ABI glue"
)]
pub mod adapter {
    wit_bindgen::generate!({
        world: "adapter-plugin",
        path: "../../wit/plugin@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_adapter_world",
        default_bindings_module: "orch_plugin_sdk::__private::bindings::adapter",
    });
}

#[cfg(feature = "dialect")]
#[allow(
    unsafe_code,
    missing_docs,
    clippy::all,
    clippy::pedantic,
    reason = "generated ABI glue"
)]
pub mod dialect {
    wit_bindgen::generate!({
        world: "dialect-plugin",
        path: "../../wit/plugin@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_dialect_world",
        default_bindings_module: "orch_plugin_sdk::__private::bindings::dialect",
    });
}

#[cfg(feature = "transformer")]
#[allow(
    unsafe_code,
    missing_docs,
    clippy::all,
    clippy::pedantic,
    reason = "generated ABI glue"
)]
pub mod transformer {
    wit_bindgen::generate!({
        world: "transformer-plugin",
        path: "../../wit/plugin@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_transformer_world",
        default_bindings_module: "orch_plugin_sdk::__private::bindings::transformer",
    });
}

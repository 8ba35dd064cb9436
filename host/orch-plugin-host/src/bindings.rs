//! The one `bindgen!` of the gateway. The inline world exports all three
//! plugin interfaces so one set of generated types serves every plugin kind;
//! a component exports only one of them, and the loader binds to that one.

wasmtime::component::bindgen!({
    inline: "
        package llm-orchestrator:gateway;

        world host-view {
            import llm-orchestrator:plugin/host@0.1.0;
            export llm-orchestrator:plugin/adapter@0.1.0;
            export llm-orchestrator:plugin/dialect@0.1.0;
            export llm-orchestrator:plugin/transformer@0.1.0;
        }
    ",
    path: "../../wit/plugin@0.1.0",
    world: "host-view",
    exports: { default: async },
});

pub(crate) use exports::llm_orchestrator::plugin::{adapter, dialect, transformer};
pub(crate) use llm_orchestrator::plugin::{host, types};

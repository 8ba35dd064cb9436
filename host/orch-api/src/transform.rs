//! Transformers in the request path: which attachments run on a request, the
//! request hooks (first to last), the response hooks (last to first), and
//! the stream filters that rewrite canonical chunks before egress encoding.
//!
//! Each call runs in a fresh instance of the attachment's plugin version.
//! An attachment's configuration is checked by its plugin once per plugin
//! version (the verdict is kept until the plugin changes). A failure (a
//! fault, a typed error, a refused configuration, a missing plugin) follows
//! the attachment's policy: fail-closed answers the client with an error in
//! its dialect, fail-open skips the transformer for this request and counts
//! it. A rejection is always the client's answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use orch_core::contract::{
    ChunkKind, StreamChunk, StreamItem, TransformAction, TransformContext, Usage,
};
use orch_core::transform::{Attachment, ClientIdentity, FailurePolicy};
use orch_plugin_host::{CallError, LoadedPlugin, Snapshot, TransformerInstance};

use crate::error::ApiError;

/// Counters of one attachment.
#[derive(Default)]
pub(crate) struct AttachmentStats {
    /// Hook calls made.
    pub(crate) calls: AtomicU64,
    /// Requests that changed (replaced bodies or chunks).
    pub(crate) replaced: AtomicU64,
    /// Requests and responses refused on purpose.
    pub(crate) rejected: AtomicU64,
    /// Failures that failed the request (fail-closed).
    pub(crate) failed: AtomicU64,
    /// Failures skipped (fail-open).
    pub(crate) skipped: AtomicU64,
}

/// A plugin version's (SHA-256) verdict on an attachment's configuration.
type Verdict = (String, Result<(), String>);

/// The configured attachments, their counters and configuration verdicts.
pub(crate) struct Transformers {
    attachments: Vec<Attachment>,
    stats: Vec<AttachmentStats>,
    /// Per attachment: the plugin version (SHA-256) its configuration was
    /// checked against, and the verdict.
    verdicts: Mutex<HashMap<usize, Verdict>>,
}

impl Transformers {
    pub(crate) fn new(attachments: Vec<Attachment>) -> Transformers {
        let stats = attachments
            .iter()
            .map(|_| AttachmentStats::default())
            .collect();
        Transformers {
            attachments,
            stats,
            verdicts: Mutex::new(HashMap::new()),
        }
    }

    /// The attachments with their counters, for the operator views.
    pub(crate) fn views(&self) -> impl Iterator<Item = (usize, &Attachment, &AttachmentStats)> {
        self.attachments
            .iter()
            .zip(&self.stats)
            .enumerate()
            .map(|(n, (a, s))| (n, a, s))
    }

    /// The chain of a request for `model`, or `None` when no attachment
    /// applies.
    pub(crate) fn chain(
        self: &Arc<Self>,
        snapshot: &Arc<Snapshot>,
        model: &str,
        client: Option<ClientIdentity<'_>>,
        base: TransformContext,
    ) -> Option<Chain> {
        let steps: Vec<usize> = (0..self.attachments.len())
            .filter(|&i| self.attachments[i].applies(model, client))
            .collect();
        if steps.is_empty() {
            return None;
        }
        Some(Chain {
            all: self.clone(),
            snapshot: snapshot.clone(),
            steps,
            base,
        })
    }

    /// Check every attachment's configuration against the loaded version
    /// of its plugin, where not checked yet: at start and after each
    /// reload, so a refused configuration shows in the log and in
    /// `GET /admin/v1/transformers` before a request needs it.
    pub(crate) async fn precheck(&self, snapshot: &Snapshot) {
        for (i, a) in self.attachments.iter().enumerate() {
            let Some(plugin) = snapshot.transformer(&a.plugin) else {
                tracing::warn!(
                    attachment = a.index,
                    plugin = %a.plugin,
                    policy = a.on_error.as_str(),
                    "transformers[{}]: no transformer plugin with this id is loaded",
                    a.index
                );
                continue;
            };
            if self.verdict(i, &plugin.sha256).is_some() {
                continue;
            }
            let v = check_config(plugin, "precheck", &a.config_json).await;
            if let Err(reason) = &v {
                tracing::error!(
                    attachment = a.index,
                    plugin = %plugin.label(),
                    "transformers[{}]: the plugin refuses this configuration: {reason}",
                    a.index
                );
            }
            self.remember(i, &plugin.sha256, v);
        }
    }

    pub(crate) fn verdict(&self, i: usize, sha: &str) -> Option<Result<(), String>> {
        let v = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        v.get(&i).filter(|(s, _)| s == sha).map(|(_, r)| r.clone())
    }

    fn remember(&self, i: usize, sha: &str, verdict: Result<(), String>) {
        let mut v = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        v.insert(i, (sha.to_string(), verdict));
    }
}

/// The attachments that run on one request, in order.
pub(crate) struct Chain {
    all: Arc<Transformers>,
    snapshot: Arc<Snapshot>,
    steps: Vec<usize>,
    base: TransformContext,
}

/// Why one step did not produce a result.
enum StepError {
    /// A rejection: always the client's answer.
    Rejected(ApiError),
    /// A failure: the attachment's policy decides.
    Failed(ApiError),
}

impl Chain {
    fn attachment(&self, i: usize) -> &Attachment {
        &self.all.attachments[i]
    }

    fn context(&self, i: usize) -> TransformContext {
        let mut ctx = self.base.clone();
        ctx.config.clone_from(&self.attachment(i).config_json);
        ctx
    }

    /// The attachment's plugin, with its configuration accepted.
    async fn plugin(&self, i: usize) -> Result<Arc<LoadedPlugin>, ApiError> {
        let a = self.attachment(i);
        let Some(plugin) = self.snapshot.transformer(&a.plugin).cloned() else {
            tracing::warn!(
                attachment = a.index,
                plugin = %a.plugin,
                "transformer plugin is not loaded"
            );
            return Err(ApiError::transformer(&a.plugin));
        };
        if plugin.quarantined().is_some() {
            return Err(ApiError::transformer(&a.plugin));
        }
        let verdict = match self.all.verdict(i, &plugin.sha256) {
            Some(v) => v,
            None => {
                let v = check_config(&plugin, &self.base.request_id, &a.config_json).await;
                if let Err(reason) = &v {
                    tracing::error!(
                        attachment = a.index,
                        plugin = %plugin.label(),
                        "transformers[{}]: the plugin refuses this configuration: {reason}",
                        a.index
                    );
                }
                self.all.remember(i, &plugin.sha256, v.clone());
                v
            }
        };
        verdict.map_err(|_| ApiError::transformer(&a.plugin))?;
        Ok(plugin)
    }

    /// Apply a step's policy to its failure: `Ok(())` to skip it.
    fn settle(&self, i: usize, e: StepError) -> Result<(), ApiError> {
        let stats = &self.all.stats[i];
        match e {
            StepError::Rejected(err) => {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                Err(err)
            }
            StepError::Failed(err) => match self.attachment(i).on_error {
                FailurePolicy::FailClosed => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    Err(err)
                }
                FailurePolicy::FailOpen => {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            },
        }
    }

    fn call_failed(&self, i: usize, plugin: &LoadedPlugin, e: &CallError) -> StepError {
        let a = self.attachment(i);
        tracing::warn!(
            request_id = %self.base.request_id,
            attachment = a.index,
            plugin = %plugin.label(),
            policy = a.on_error.as_str(),
            "transformer failed: {e}"
        );
        StepError::Failed(match e {
            CallError::Plugin(c) => ApiError::classified(c),
            CallError::Fault(_) => ApiError::transformer(&a.plugin),
        })
    }

    async fn instance(&self, i: usize) -> Result<TransformerInstance, StepError> {
        let plugin = self.plugin(i).await.map_err(StepError::Failed)?;
        plugin
            .transformer(&self.base.request_id)
            .await
            .map_err(|f| self.call_failed(i, &plugin, &CallError::Fault(f)))
    }

    fn act(&self, i: usize, action: TransformAction, body: &mut String) -> Result<bool, StepError> {
        self.all.stats[i].calls.fetch_add(1, Ordering::Relaxed);
        match action {
            TransformAction::Pass => Ok(false),
            TransformAction::Replace(new) => {
                self.all.stats[i].replaced.fetch_add(1, Ordering::Relaxed);
                *body = new;
                Ok(true)
            }
            TransformAction::Reject(r) => Err(StepError::Rejected(ApiError::rejected(&r))),
        }
    }

    /// Run the request hooks in order. Returns the new body when a
    /// transformer replaced it; `model` follows each replacement.
    pub(crate) async fn on_request(&mut self, body: &Bytes) -> Result<Option<String>, ApiError> {
        let mut text = String::from_utf8_lossy(body).into_owned();
        let mut changed = false;
        for n in 0..self.steps.len() {
            let i = self.steps[n];
            let step = async {
                let mut inst = self.instance(i).await?;
                let ctx = self.context(i);
                let action = inst
                    .on_request(&ctx, &text)
                    .await
                    .map_err(|e| self.call_failed(i, inst.plugin(), &e))?;
                self.act(i, action, &mut text)
            };
            match step.await {
                Ok(true) => {
                    changed = true;
                    if let Some(model) = model_of(&text) {
                        self.base.requested_model = model;
                    }
                }
                Ok(false) => {}
                Err(e) => self.settle(i, e)?,
            }
        }
        Ok(changed.then_some(text))
    }

    /// Run the response hooks, last attachment first.
    pub(crate) async fn on_response(
        &self,
        mut body: String,
        usage: Option<Usage>,
    ) -> Result<String, ApiError> {
        for &i in self.steps.iter().rev() {
            let step = async {
                let mut inst = self.instance(i).await?;
                let ctx = self.context(i);
                let action = inst
                    .on_response(&ctx, &body, usage)
                    .await
                    .map_err(|e| self.call_failed(i, inst.plugin(), &e))?;
                self.act(i, action, &mut body)
            };
            if let Err(e) = step.await {
                self.settle(i, e)?;
            }
        }
        Ok(body)
    }

    /// The model after the request hooks.
    pub(crate) fn model(&self) -> &str {
        &self.base.requested_model
    }

    /// Start one stream's filters (one instance each, last attachment
    /// first). A fail-open filter that cannot start is left out.
    pub(crate) async fn filters(&self) -> Result<Filters, ApiError> {
        let mut stages = Vec::with_capacity(self.steps.len());
        for &i in self.steps.iter().rev() {
            let started = async {
                let mut inst = self.instance(i).await?;
                inst.start_filter(&self.context(i))
                    .await
                    .map_err(|f| self.call_failed(i, inst.plugin(), &CallError::Fault(f)))?;
                Ok::<_, StepError>(inst)
            };
            match started.await {
                Ok(inst) => stages.push(Stage { step: i, inst }),
                Err(e) => self.settle(i, e)?,
            }
        }
        Ok(Filters {
            all: self.all.clone(),
            stages,
            request_id: self.base.request_id.clone(),
        })
    }
}

/// The model named by a canonical request.
fn model_of(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        model: Option<String>,
    }
    serde_json::from_str::<Head>(body)
        .ok()?
        .model
        .filter(|m| !m.is_empty())
}

async fn check_config(
    plugin: &Arc<LoadedPlugin>,
    request_id: &str,
    config: &str,
) -> Result<(), String> {
    let mut inst = plugin
        .transformer(request_id)
        .await
        .map_err(|f| f.to_string())?;
    inst.check_config(config).await.map_err(|e| e.to_string())
}

struct Stage {
    step: usize,
    inst: TransformerInstance,
}

/// One stream's filters, applied in order to every canonical chunk.
pub(crate) struct Filters {
    all: Arc<Transformers>,
    stages: Vec<Stage>,
    request_id: String,
}

impl Filters {
    fn failed(&mut self, n: usize, e: &CallError) -> Result<(), ApiError> {
        let i = self.stages[n].step;
        let a = &self.all.attachments[i];
        let stats = &self.all.stats[i];
        tracing::warn!(
            request_id = %self.request_id,
            attachment = a.index,
            plugin = %self.stages[n].inst.plugin().label(),
            policy = a.on_error.as_str(),
            "transformer stream filter failed: {e}"
        );
        match a.on_error {
            FailurePolicy::FailClosed => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                Err(match e {
                    CallError::Plugin(c) => ApiError::classified(c),
                    CallError::Fault(_) => ApiError::transformer(&a.plugin),
                })
            }
            FailurePolicy::FailOpen => {
                // The filter is dropped for the rest of the stream; what it
                // held is lost with it.
                stats.skipped.fetch_add(1, Ordering::Relaxed);
                self.stages.remove(n);
                Ok(())
            }
        }
    }

    /// Pass chunks through the stages from `from` on.
    async fn through(
        &mut self,
        from: usize,
        mut chunks: Vec<String>,
    ) -> Result<Vec<String>, ApiError> {
        let mut n = from;
        while n < self.stages.len() {
            let mut out = Vec::with_capacity(chunks.len());
            let mut failed = None;
            for chunk in &chunks {
                match self.stages[n].inst.on_chunk(chunk).await {
                    Ok(more) => out.extend(more),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            self.all.stats[self.stages[n].step]
                .calls
                .fetch_add(1, Ordering::Relaxed);
            match failed {
                Some(e) => self.failed(n, &e)?, // fail-open: stage removed, same input goes on
                None => {
                    chunks = out;
                    n += 1;
                }
            }
        }
        Ok(chunks)
    }

    /// Rewrite the decoder's items: content and meta chunks go through the
    /// filters; usage, the end and usage chunks pass; at the end every
    /// filter releases what it held (through the filters after it).
    pub(crate) async fn apply(
        &mut self,
        items: Vec<StreamItem>,
        mut usage: Option<Usage>,
    ) -> Result<Vec<StreamItem>, ApiError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                StreamItem::Chunk(c) if c.kind != ChunkKind::Usage => {
                    let chunks = self.through(0, vec![c.data]).await?;
                    out.extend(chunks.into_iter().map(item_of));
                }
                StreamItem::Done => {
                    let mut n = 0;
                    while n < self.stages.len() {
                        match self.stages[n].inst.on_end(usage).await {
                            Ok(held) => {
                                let released = self.through(n + 1, held).await?;
                                out.extend(released.into_iter().map(item_of));
                                n += 1;
                            }
                            Err(e) => self.failed(n, &e)?,
                        }
                    }
                    out.push(StreamItem::Done);
                }
                StreamItem::Usage(u) => {
                    usage = Some(u);
                    out.push(StreamItem::Usage(u));
                }
                other => out.push(other),
            }
        }
        Ok(out)
    }
}

fn item_of(data: String) -> StreamItem {
    let kind = orch_core::canonical::chunk_kind(&data).unwrap_or(ChunkKind::Meta);
    StreamItem::Chunk(StreamChunk {
        kind,
        event: None,
        data,
    })
}

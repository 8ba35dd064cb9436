//! The configuration catalogue: round trips, batches, errors, audit and spend,
//! on every database.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

use std::time::Duration;

use orch_store::{
    AuditEntry, AuditQuery, Change, ClientKeyRow, Dialect, KeySecret, ManagedBy, ModelRow,
    ProviderKeyRow, ProviderRow, Snapshot, Store, StoreError, TargetRow,
};
use sqlx::Connection;

use crate::support::{Target, each_store};

const T1: i64 = 1_750_000_000_000;
const T2: i64 = T1 + 60_000;

fn provider(name: &str) -> ProviderRow {
    ProviderRow {
        id: 0,
        name: name.to_owned(),
        adapter: "openai".to_owned(),
        base_url: "https://api.example.com/v1".to_owned(),
        options_json: r#"{"organization":"org-1"}"#.to_owned(),
        key_strategy: "round_robin".to_owned(),
        error_matchers_json: "[]".to_owned(),
        probe_interval_s: None,
        enabled: true,
        managed_by: ManagedBy::Api,
        created_ms: 0,
        updated_ms: 0,
    }
}

/// A 64-hex-digit fingerprint or hash derived from `n`.
fn hex64(n: u64) -> String {
    format!("{n:064x}")
}

fn env_key(position: i32, n: u64) -> ProviderKeyRow {
    ProviderKeyRow {
        id: 0,
        provider: String::new(),
        position,
        label: None,
        secret: KeySecret::Env(format!("env:KEY_{n}")),
        masked: format!("sk-{n}…wxyz"),
        fingerprint: hex64(n),
        enabled: true,
        created_ms: 0,
    }
}

fn sealed_key(position: i32, n: u64) -> ProviderKeyRow {
    ProviderKeyRow {
        label: Some("ключ 🔑".to_owned()),
        secret: KeySecret::Sealed {
            key_id: "master-2025".to_owned(),
            blob: (0..1000).map(|i| (i % 251) as u8).collect(),
        },
        enabled: false,
        ..env_key(position, n)
    }
}

fn target_on(provider: &str, position: i32) -> TargetRow {
    TargetRow {
        id: 0,
        position,
        provider: provider.to_owned(),
        upstream_model: format!("upstream-{position}"),
        weight: 10 + position,
        priority: position % 2,
        overrides_json: "{}".to_owned(),
        headers_json: r#"{"x-team":"a"}"#.to_owned(),
        capabilities_json: None,
        timeout_ms: None,
        ttft_timeout_ms: None,
        enabled: true,
    }
}

fn model(name: &str, targets: Vec<TargetRow>) -> ModelRow {
    ModelRow {
        id: 0,
        name: name.to_owned(),
        aliases_json: "[]".to_owned(),
        strategy: "weighted".to_owned(),
        session_header: None,
        max_attempts: None,
        enabled: true,
        managed_by: ManagedBy::File,
        created_ms: 0,
        updated_ms: 0,
        targets,
    }
}

fn client_key(name: &str, n: u64) -> ClientKeyRow {
    ClientKeyRow {
        id: 0,
        name: name.to_owned(),
        prefix: "orch-ab12".to_owned(),
        hash: hex64(n),
        policy_json: r#"{"models":["*"],"rpm":60}"#.to_owned(),
        expires_ms: None,
        enabled: true,
        capture_bodies: false,
        metadata_json: "{}".to_owned(),
        created_ms: 0,
        updated_ms: 0,
    }
}

fn audit_entry(ts_ms: i64, entity: &str, name: &str) -> AuditEntry {
    AuditEntry {
        ts_ms,
        actor: "admin".to_owned(),
        action: "update".to_owned(),
        entity: entity.to_owned(),
        entity_name: name.to_owned(),
        detail_json: r#"{"fields":["enabled"]}"#.to_owned(),
    }
}

fn all_audit(limit: u32) -> AuditQuery {
    AuditQuery {
        since_ms: i64::MIN,
        until_ms: i64::MAX,
        entity: None,
        before_id: None,
        limit,
    }
}

/// Applies one change without audit records, returning its id.
async fn apply_one(store: &Store, change: Change, now_ms: i64) -> i64 {
    store.apply(&[change], &[], now_ms).await.unwrap().ids[0]
}

/// A provider `openai`, a model `gpt` routing to it, and a client key.
async fn seed(store: &Store) {
    let changes = [
        Change::UpsertProvider(provider("openai")),
        Change::ReplaceProviderKeys {
            provider: "openai".to_owned(),
            keys: vec![env_key(0, 1)],
        },
        Change::UpsertModel(model("gpt", vec![target_on("openai", 0)])),
        Change::CreateClientKey(client_key("team-a", 1)),
    ];
    store.apply(&changes, &[], T1).await.unwrap();
}

/// Runs one statement over a connection of its own (test-written SQL only).
async fn execute(target: &Target, sql: &str) -> Result<(), sqlx::Error> {
    match target.store.dialect() {
        Dialect::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&target.url).await?;
            sqlx::query(sql).execute(&mut conn).await.map(drop)
        }
        Dialect::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&target.url).await?;
            sqlx::query(sql).execute(&mut conn).await.map(drop)
        }
        Dialect::MySql => {
            let mut conn = sqlx::MySqlConnection::connect(&target.url).await?;
            sqlx::query(sql).execute(&mut conn).await.map(drop)
        }
    }
}

#[tokio::test]
async fn every_row_type_round_trips() {
    each_store(|target: Target| async move {
        let store = &target.store;
        let bare = provider("openai");
        let full = ProviderRow {
            probe_interval_s: Some(30),
            enabled: false,
            managed_by: ManagedBy::File,
            ..provider("提供者-🚀")
        };
        let keys = vec![env_key(0, 1), sealed_key(1, 2)];
        let rich_target = TargetRow {
            capabilities_json: Some(r#"{"vision":true}"#.to_owned()),
            timeout_ms: Some(120_000),
            ttft_timeout_ms: Some(i64::MAX),
            enabled: false,
            ..target_on("提供者-🚀", 1)
        };
        let gpt = ModelRow {
            session_header: Some("x-session-id".to_owned()),
            max_attempts: Some(3),
            aliases_json: r#"["gpt-4o-latest","модель"]"#.to_owned(),
            ..model("gpt-4o", vec![target_on("openai", 0), rich_target])
        };
        let bare_model = model("ëmbed", Vec::new());
        let key = ClientKeyRow {
            expires_ms: Some(T2),
            capture_bodies: true,
            metadata_json: r#"{"owner":"Zoë"}"#.to_owned(),
            ..client_key("équipe-α", 7)
        };
        let applied = store
            .apply(
                &[
                    Change::UpsertProvider(bare.clone()),
                    Change::UpsertProvider(full.clone()),
                    Change::ReplaceProviderKeys {
                        provider: full.name.clone(),
                        keys: keys.clone(),
                    },
                    Change::UpsertModel(gpt.clone()),
                    Change::UpsertModel(bare_model.clone()),
                    Change::CreateClientKey(key.clone()),
                ],
                &[],
                T1,
            )
            .await
            .unwrap();
        assert_eq!(applied.revision, 1);
        let [
            bare_id,
            full_id,
            keys_provider_id,
            gpt_id,
            bare_model_id,
            key_id,
        ] = applied.ids[..].try_into().unwrap();
        assert_eq!(keys_provider_id, full_id);

        let snapshot = store.snapshot().await.unwrap();
        let stamped = |row: ProviderRow, id| ProviderRow {
            id,
            created_ms: T1,
            updated_ms: T1,
            ..row
        };
        // Names sort by UTF-8 bytes: ASCII before CJK, `gpt` before `ë`.
        assert_eq!(
            snapshot.providers,
            [stamped(bare, bare_id), stamped(full.clone(), full_id)]
        );
        let stored_keys: Vec<_> = keys
            .into_iter()
            .zip(&snapshot.keys)
            .map(|(key, stored)| ProviderKeyRow {
                id: stored.id,
                provider: full.name.clone(),
                created_ms: T1,
                ..key
            })
            .collect();
        assert_eq!(snapshot.keys, stored_keys);
        let with_ids = |row: ModelRow, id, stored: &ModelRow| ModelRow {
            id,
            created_ms: T1,
            updated_ms: T1,
            targets: row
                .targets
                .into_iter()
                .zip(&stored.targets)
                .map(|(target, stored)| TargetRow {
                    id: stored.id,
                    ..target
                })
                .collect(),
            ..row
        };
        assert_eq!(snapshot.models.len(), 2);
        assert_eq!(
            snapshot.models[0],
            with_ids(gpt, gpt_id, &snapshot.models[0])
        );
        assert_eq!(snapshot.models[0].targets.len(), 2);
        assert_eq!(
            snapshot.models[1],
            with_ids(bare_model, bare_model_id, &snapshot.models[1])
        );
        assert_eq!(
            snapshot.client_keys,
            [ClientKeyRow {
                id: key_id,
                created_ms: T1,
                updated_ms: T1,
                ..key
            }]
        );
        assert_eq!(snapshot.revision, store.revision().await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn upsert_by_name_keeps_id_and_creation_time() {
    each_store(|target: Target| async move {
        let store = &target.store;
        seed(store).await;
        let before = store.snapshot().await.unwrap();

        let changed_provider = ProviderRow {
            base_url: "https://eu.example.com/v1".to_owned(),
            probe_interval_s: Some(15),
            managed_by: ManagedBy::File,
            ..provider("openai")
        };
        let changed_model = ModelRow {
            strategy: "priority".to_owned(),
            max_attempts: Some(2),
            ..model("gpt", vec![target_on("openai", 0)])
        };
        let applied = store
            .apply(
                &[
                    Change::UpsertProvider(changed_provider.clone()),
                    Change::UpsertModel(changed_model),
                ],
                &[],
                T2,
            )
            .await
            .unwrap();
        assert_eq!(applied.ids, [before.providers[0].id, before.models[0].id]);

        let after = store.snapshot().await.unwrap();
        assert_eq!(
            after.providers,
            [ProviderRow {
                id: before.providers[0].id,
                created_ms: T1,
                updated_ms: T2,
                ..changed_provider
            }]
        );
        assert_eq!(after.keys, before.keys, "keys are left alone");
        let model = &after.models[0];
        assert_eq!(
            (model.id, model.created_ms, model.updated_ms),
            (before.models[0].id, T1, T2)
        );
        assert_eq!(
            (model.strategy.as_str(), model.max_attempts),
            ("priority", Some(2))
        );
    })
    .await;
}

#[tokio::test]
async fn replacing_keys_and_targets_keeps_positions() {
    each_store(|target: Target| async move {
        let store = &target.store;
        seed(store).await;
        apply_one(store, Change::UpsertProvider(provider("azure")), T1).await;

        // Given out of order; stored and read back in position order.
        let keys = vec![env_key(2, 30), sealed_key(0, 10), env_key(1, 1)];
        apply_one(
            store,
            Change::ReplaceProviderKeys {
                provider: "openai".to_owned(),
                keys,
            },
            T2,
        )
        .await;
        let snapshot = store.snapshot().await.unwrap();
        let stored: Vec<_> = snapshot
            .keys
            .iter()
            .map(|key| (key.position, key.fingerprint.clone(), key.created_ms))
            .collect();
        assert_eq!(
            stored,
            [
                (0, hex64(10), T2),
                (1, hex64(1), T1), // already stored by `seed`: keeps its creation time
                (2, hex64(30), T2),
            ]
        );

        let targets = vec![
            target_on("azure", 5),
            target_on("openai", 2),
            target_on("azure", 9),
        ];
        apply_one(store, Change::UpsertModel(model("gpt", targets)), T2).await;
        let snapshot = store.snapshot().await.unwrap();
        let stored: Vec<_> = snapshot.models[0]
            .targets
            .iter()
            .map(|target| (target.position, target.provider.as_str()))
            .collect();
        assert_eq!(stored, [(2, "openai"), (5, "azure"), (9, "azure")]);
        assert_eq!(target.scalar("SELECT COUNT(*) FROM targets").await, 3);

        // Replacing with nothing removes them all.
        apply_one(
            store,
            Change::ReplaceProviderKeys {
                provider: "openai".to_owned(),
                keys: Vec::new(),
            },
            T2,
        )
        .await;
        assert!(store.snapshot().await.unwrap().keys.is_empty());
    })
    .await;
}

#[tokio::test]
async fn revision_bumps_once_per_apply() {
    each_store(|target: Target| async move {
        let store = &target.store;
        assert_eq!(store.revision().await.unwrap(), 0);
        seed(store).await;
        assert_eq!(store.revision().await.unwrap(), 1);

        let applied = store
            .apply(
                &[
                    Change::UpsertProvider(provider("a")),
                    Change::UpsertProvider(provider("b")),
                    Change::DeleteProvider("a".to_owned()),
                ],
                &[audit_entry(T2, "provider", "a")],
                T2,
            )
            .await
            .unwrap();
        assert_eq!(applied.revision, 2);
        assert_eq!(store.revision().await.unwrap(), 2);
        assert_eq!(
            target
                .scalar("SELECT updated_ms FROM config_revision WHERE id = 1")
                .await,
            T2
        );

        // Audit records alone change nothing the replicas load.
        let applied = store
            .apply(&[], &[audit_entry(T2, "login", "admin")], T2)
            .await
            .unwrap();
        assert_eq!((applied.revision, applied.ids.len()), (2, 0));
        assert_eq!(store.snapshot().await.unwrap().revision, 2);
        assert_eq!(store.audit(&all_audit(10)).await.unwrap().len(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_consistent_while_batches_commit() {
    each_store(|target: Target| async move {
        let store = target.store.clone();
        // Every batch writes its revision number into a provider and a model.
        let batch = |revision: i64| {
            [
                Change::UpsertProvider(ProviderRow {
                    base_url: format!("https://p/{revision}"),
                    ..provider("openai")
                }),
                Change::UpsertModel(ModelRow {
                    strategy: format!("s{revision}"),
                    ..model("gpt", vec![target_on("openai", 0)])
                }),
            ]
        };
        const BATCHES: i64 = 40;
        let writer = tokio::spawn(async move {
            for revision in 1..=BATCHES {
                store.apply(&batch(revision), &[], T1).await.unwrap();
            }
        });
        let mut seen = 0;
        loop {
            let finished = writer.is_finished();
            let snapshot = target.store.snapshot().await.unwrap();
            if snapshot.revision > 0 {
                assert_snapshot_is_one_batch(&snapshot);
                seen += 1;
            }
            if finished {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        writer.await.unwrap();
        assert!(seen > 0);
        assert_eq!(target.store.revision().await.unwrap(), BATCHES);
    })
    .await;
}

fn assert_snapshot_is_one_batch(snapshot: &Snapshot) {
    let revision = snapshot.revision;
    assert_eq!(
        snapshot.providers[0].base_url,
        format!("https://p/{revision}")
    );
    assert_eq!(snapshot.models[0].strategy, format!("s{revision}"));
    assert_eq!(snapshot.models[0].targets.len(), 1);
}

#[tokio::test]
async fn deleting_a_provider_in_use_is_refused() {
    each_store(|target: Target| async move {
        let store = &target.store;
        seed(store).await;
        let before = store.snapshot().await.unwrap();

        let error = store
            .apply(
                &[
                    Change::UpsertProvider(provider("spare")),
                    Change::DeleteProvider("openai".to_owned()),
                ],
                &[audit_entry(T2, "provider", "openai")],
                T2,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::InUse { entity: "provider", name, by }
                if name == "openai" && by == "gpt"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "provider `openai` is still used by `gpt`"
        );
        assert_eq!(store.snapshot().await.unwrap(), before);
        assert!(store.audit(&all_audit(10)).await.unwrap().is_empty());

        // Once no model routes to it, it goes, and its keys with it.
        let applied = store
            .apply(
                &[
                    Change::DeleteModel("gpt".to_owned()),
                    Change::DeleteProvider("openai".to_owned()),
                ],
                &[],
                T2,
            )
            .await
            .unwrap();
        assert_eq!(applied.ids, [before.models[0].id, before.providers[0].id]);
        assert_eq!(target.scalar("SELECT COUNT(*) FROM provider_keys").await, 0);
        assert!(store.snapshot().await.unwrap().providers.is_empty());
    })
    .await;
}

#[tokio::test]
async fn deleting_a_model_deletes_its_targets() {
    each_store(|target: Target| async move {
        let store = &target.store;
        seed(store).await;
        apply_one(
            store,
            Change::UpsertModel(model(
                "other",
                vec![target_on("openai", 0), target_on("openai", 1)],
            )),
            T1,
        )
        .await;
        assert_eq!(target.scalar("SELECT COUNT(*) FROM targets").await, 3);

        apply_one(store, Change::DeleteModel("other".to_owned()), T2).await;
        assert_eq!(target.scalar("SELECT COUNT(*) FROM targets").await, 1);
        let names: Vec<_> = store
            .snapshot()
            .await
            .unwrap()
            .models
            .into_iter()
            .map(|model| model.name)
            .collect();
        assert_eq!(names, ["gpt"]);

        let error = store
            .apply(&[Change::DeleteModel("other".to_owned())], &[], T2)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::NotFound { entity: "model", name } if name == "other"),
            "{error:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn duplicate_unique_keys_conflict() {
    each_store(|target: Target| async move {
        let store = &target.store;
        seed(store).await;

        let error = store
            .apply(
                &[Change::CreateClientKey(client_key("team-b", 1))],
                &[],
                T2,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Conflict { entity: "client key", name } if name == "team-b"),
            "{error:?}"
        );

        let error = store
            .apply(
                &[Change::ReplaceProviderKeys {
                    provider: "openai".to_owned(),
                    keys: vec![env_key(0, 5), sealed_key(1, 5)],
                }],
                &[],
                T2,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Conflict { entity: "provider key", name } if name == "sk-5…wxyz"),
            "{error:?}"
        );
        assert_eq!(store.revision().await.unwrap(), 1);
        assert_eq!(store.snapshot().await.unwrap().keys[0].fingerprint, hex64(1));
    })
    .await;
}

#[tokio::test]
async fn missing_rows_are_not_found() {
    each_store(|target: Target| async move {
        let store = &target.store;
        seed(store).await;
        let cases = [
            (
                Change::UpsertModel(model("m", vec![target_on("openai", 0), target_on("ghost", 1)])),
                "provider",
                "ghost",
            ),
            (Change::DeleteProvider("ghost".to_owned()), "provider", "ghost"),
            (
                Change::ReplaceProviderKeys {
                    provider: "ghost".to_owned(),
                    keys: vec![env_key(0, 9)],
                },
                "provider",
                "ghost",
            ),
            (
                Change::UpdateClientKey(ClientKeyRow {
                    id: 999_999,
                    ..client_key("x", 9)
                }),
                "client key",
                "999999",
            ),
            (Change::DeleteClientKey(999_999), "client key", "999999"),
        ];
        for (change, entity, name) in cases {
            let error = store.apply(&[change], &[], T2).await.unwrap_err();
            assert!(
                matches!(&error, StoreError::NotFound { entity: e, name: n } if *e == entity && n == name),
                "{error:?}"
            );
        }
        assert_eq!(store.revision().await.unwrap(), 1);
        assert_eq!(store.snapshot().await.unwrap().models.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_failing_batch_leaves_no_trace() {
    each_store(|target: Target| async move {
        let store = &target.store;
        seed(store).await;
        let before = store.snapshot().await.unwrap();
        let audit_before = store.audit(&all_audit(100)).await.unwrap();

        let error = store
            .apply(
                &[
                    Change::UpsertProvider(provider("new")),
                    Change::CreateClientKey(client_key("team-b", 2)),
                    Change::DeleteModel("missing".to_owned()),
                    Change::DeleteModel("gpt".to_owned()),
                ],
                &[
                    audit_entry(T2, "provider", "new"),
                    audit_entry(T2, "client_key", "team-b"),
                ],
                T2,
            )
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::NotFound { .. }), "{error:?}");
        assert_eq!(store.snapshot().await.unwrap(), before);
        assert_eq!(store.revision().await.unwrap(), 1);
        assert_eq!(store.audit(&all_audit(100)).await.unwrap(), audit_before);
        assert_eq!(target.scalar("SELECT COUNT(*) FROM providers").await, 1);
        assert_eq!(target.scalar("SELECT COUNT(*) FROM client_keys").await, 1);
    })
    .await;
}

#[tokio::test]
async fn client_keys_update_and_delete_by_id() {
    each_store(|target: Target| async move {
        let store = &target.store;
        let id = apply_one(store, Change::CreateClientKey(client_key("team-a", 1)), T1).await;
        let update = ClientKeyRow {
            id,
            name: "team-a (renamed)".to_owned(),
            prefix: "ignored".to_owned(),
            hash: hex64(99),
            policy_json: r#"{"models":["gpt"]}"#.to_owned(),
            expires_ms: Some(T2 + 1),
            enabled: false,
            capture_bodies: true,
            metadata_json: r#"{"ticket":42}"#.to_owned(),
            created_ms: 5,
            updated_ms: 5,
        };
        assert_eq!(
            apply_one(store, Change::UpdateClientKey(update.clone()), T2).await,
            id
        );
        let stored = store.snapshot().await.unwrap().client_keys;
        assert_eq!(
            stored,
            [ClientKeyRow {
                prefix: "orch-ab12".to_owned(),
                hash: hex64(1),
                created_ms: T1,
                updated_ms: T2,
                ..update
            }]
        );

        assert_eq!(apply_one(store, Change::DeleteClientKey(id), T2).await, id);
        assert!(store.snapshot().await.unwrap().client_keys.is_empty());
    })
    .await;
}

#[tokio::test]
async fn audit_pages_return_every_record_once_newest_first() {
    each_store(|target: Target| async move {
        let store = &target.store;
        let entities = ["provider", "model", "client_key"];
        for batch in 0..5 {
            let entries: Vec<_> = (0..5)
                .map(|i| {
                    let n = batch * 5 + i;
                    audit_entry(T1 + n, entities[n as usize % 3], &format!("row-{n}"))
                })
                .collect();
            store.apply(&[], &entries, T1).await.unwrap();
        }

        let mut pages = Vec::new();
        let mut query = all_audit(7);
        loop {
            let page = store.audit(&query).await.unwrap();
            let Some(last) = page.last() else { break };
            query.before_id = Some(last.id);
            pages.push(page);
        }
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 7, 4]);
        let rows: Vec<_> = pages.into_iter().flatten().collect();
        let names: Vec<_> = rows.iter().map(|row| row.entity_name.clone()).collect();
        let expected: Vec<_> = (0..25).rev().map(|n| format!("row-{n}")).collect();
        assert_eq!(names, expected);
        assert!(rows.windows(2).all(|pair| pair[0].id > pair[1].id));
        assert_eq!(
            rows[0],
            orch_store::AuditRow {
                id: rows[0].id,
                ts_ms: T1 + 24,
                actor: "admin".to_owned(),
                action: "update".to_owned(),
                entity: "provider".to_owned(),
                entity_name: "row-24".to_owned(),
                detail_json: r#"{"fields":["enabled"]}"#.to_owned(),
            }
        );

        // Filters: entity, and the half-open time range [since, until).
        let models = store
            .audit(&AuditQuery {
                entity: Some("model".to_owned()),
                ..all_audit(100)
            })
            .await
            .unwrap();
        assert_eq!(models.len(), 8);
        assert!(models.iter().all(|row| row.entity == "model"));
        let window = store
            .audit(&AuditQuery {
                since_ms: T1 + 10,
                until_ms: T1 + 13,
                ..all_audit(100)
            })
            .await
            .unwrap();
        let names: Vec<_> = window.iter().map(|row| row.entity_name.as_str()).collect();
        assert_eq!(names, ["row-12", "row-11", "row-10"]);
    })
    .await;
}

#[tokio::test]
async fn spend_upserts_add_tokens() {
    each_store(|target: Target| async move {
        let store = &target.store;
        let a = apply_one(store, Change::CreateClientKey(client_key("a", 1)), T1).await;
        let b = apply_one(store, Change::CreateClientKey(client_key("b", 2)), T1).await;
        let day = 86_400_000;

        store
            .add_spend(&[(a, T1, 100), (b, T1, 5), (a, T1 + day, 1)])
            .await
            .unwrap();
        // The same key and period twice in one call, and a key that does not exist.
        store
            .add_spend(&[(a, T1, 20), (a, T1, 3), (999_999, T1, 50)])
            .await
            .unwrap();
        store.add_spend(&[]).await.unwrap();

        assert_eq!(
            store.spend_since(T1).await.unwrap(),
            [(a, T1, 123), (a, T1 + day, 1), (b, T1, 5)]
        );
        assert_eq!(store.spend_since(T1 + 1).await.unwrap(), [(a, T1 + day, 1)]);

        // A deleted key's spend goes with it.
        apply_one(store, Change::DeleteClientKey(a), T2).await;
        assert_eq!(store.spend_since(0).await.unwrap(), [(b, T1, 5)]);
    })
    .await;
}

#[tokio::test]
async fn the_schema_enforces_keys_and_checks() {
    each_store(|target: Target| async move {
        seed(&target.store).await;
        let fingerprint = hex64(77);
        let key_insert = |provider_id: &str, env_ref: &str, sealed: &str, key_id: &str| {
            format!(
                "INSERT INTO provider_keys (provider_id, position, env_ref, sealed, key_id, \
                 masked, fingerprint, enabled, created_ms) \
                 VALUES ({provider_id}, 0, {env_ref}, {sealed}, {key_id}, 'x', '{fingerprint}', TRUE, 0)"
            )
        };
        let provider_id = "(SELECT id FROM providers WHERE name = 'openai')";
        let blob = match target.store.dialect() {
            Dialect::Postgres => "'\\x0102'::bytea",
            Dialect::Sqlite | Dialect::MySql => "X'0102'",
        };

        // The statement shape is valid: a well-formed key goes in.
        execute(&target, &key_insert(provider_id, "'env:K'", "NULL", "NULL"))
            .await
            .unwrap();
        let rejected = [
            ("orphan key", key_insert("999999", "'env:K'", "NULL", "NULL")),
            (
                "duplicate fingerprint",
                key_insert(provider_id, "'env:K2'", "NULL", "NULL"),
            ),
            ("no secret", key_insert(provider_id, "NULL", "NULL", "NULL")),
            (
                "both secrets",
                key_insert(provider_id, "'env:K'", blob, "'m1'"),
            ),
            ("sealed without key id", key_insert(provider_id, "NULL", blob, "NULL")),
            (
                "duplicate provider name",
                "INSERT INTO providers (name, adapter, base_url, options_json, key_strategy, \
                 error_matchers_json, enabled, managed_by, created_ms, updated_ms) \
                 VALUES ('openai', 'a', 'u', '{}', 's', '[]', TRUE, 'api', 0, 0)"
                    .to_owned(),
            ),
            (
                "orphan spend",
                "INSERT INTO client_key_spend (client_key_id, period_start_ms, tokens) \
                 VALUES (999999, 0, 1)"
                    .to_owned(),
            ),
            (
                "second revision row",
                "INSERT INTO config_revision (id, revision, updated_ms) VALUES (2, 0, 0)"
                    .to_owned(),
            ),
        ];
        for (what, sql) in rejected {
            assert!(execute(&target, &sql).await.is_err(), "{what} was accepted");
        }
        assert_eq!(target.scalar("SELECT COUNT(*) FROM provider_keys").await, 2);
    })
    .await;
}

//! Upgrades keep what was accepted: a database made by an earlier Herald is
//! migrated in place, its queued messages intact.

use crate::helpers::*;

const CONTENT: &str = r#"{"to":["a@example.com"],"subject":"Queued before the upgrade","text":"kept"}"#;
const INSERT: &str = "INSERT INTO messages (id, tenant_id, status, message_id, content, next_attempt_at, created_at, \
    updated_at) VALUES ('m-old', 'platform', 'queued', 'old@herald.test', $1, 0, 0, 0)";

/// 0006 moved each message's content to `message_contents`.
async fn content_survives(url: &str) {
    let store = herald::store::Store::connect(url).await.expect("the upgrade runs");
    let row = store
        .get_message("platform", "m-old")
        .await
        .unwrap()
        .expect("the message is still there");
    assert_eq!(row.content, CONTENT);
    assert_eq!(row.status, "queued");
    assert_eq!(row.message_id, "old@herald.test");
    store.close().await;
}

#[tokio::test]
async fn sqlite_messages_queued_before_the_content_split_survive_it() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let opts: SqliteConnectOptions = url.parse::<SqliteConnectOptions>().unwrap().create_if_missing(true);
    let pool = SqlitePool::connect_with(opts).await.unwrap();
    sqlx::migrate!("./migrations/sqlite").run_to(5, &pool).await.unwrap();
    sqlx::query(INSERT).bind(CONTENT).execute(&pool).await.unwrap();
    pool.close().await;
    content_survives(&url).await;
}

#[tokio::test]
async fn postgres_messages_queued_before_the_content_split_survive_it() {
    let url = new_pg_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::migrate!("./migrations/postgres").run_to(5, &pool).await.unwrap();
    sqlx::query(INSERT).bind(CONTENT).execute(&pool).await.unwrap();
    pool.close().await;
    content_survives(&url).await;
}

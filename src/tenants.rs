//! Tenants: the platform admin creates them; each gets its own admin token,
//! shown once, and sees only its own accounts, messages, rules and settings.

use crate::app::App;
use crate::error::{Error, Result};
use crate::store::PLATFORM;
use crate::store::tenants::TenantRow;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

/// The answer to creating a tenant: the only time its token is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedTenant {
    pub id: String,
    pub name: String,
    pub token: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantInput {
    pub name: Option<String>,
}

fn view(t: &TenantRow) -> TenantView {
    TenantView {
        id: t.id.clone(),
        name: t.name.clone(),
        created_at: crate::rfc3339(t.created_at),
    }
}

/// Only the platform admin manages tenants.
pub fn require_platform(tenant: &str) -> Result<()> {
    if tenant == PLATFORM {
        Ok(())
    } else {
        Err(Error::Forbidden("only the platform admin manages tenants".into()))
    }
}

impl App {
    pub async fn create_tenant(&self, caller: &str, input: TenantInput) -> Result<CreatedTenant> {
        require_platform(caller)?;
        let name = input.name.as_deref().map(str::trim).unwrap_or("");
        if name.is_empty() {
            return Err(Error::field(
                "name",
                "is required: the tenant's name, e.g. \"Acme Corp\"",
            ));
        }
        let name = crate::domain::HeaderText::parse(name).map_err(|m| Error::field("name", m))?;
        let row = TenantRow {
            id: crate::store::new_id(),
            name: name.as_str().to_string(),
            created_at: crate::now_ms(),
        };
        self.store.insert_tenant(&row).await?;
        let token = crate::secrets::new_token();
        self.store
            .insert_token(&crate::secrets::token_hash(&token), &row.id, "tenant admin")
            .await?;
        self.ensure_system_rules(&row.id).await?;
        tracing::info!(tenant = %row.id, "tenant created");
        Ok(CreatedTenant {
            id: row.id,
            name: row.name,
            token,
        })
    }

    pub async fn list_tenants(&self, caller: &str) -> Result<Vec<TenantView>> {
        if caller == PLATFORM {
            Ok(self.store.list_tenants().await?.iter().map(view).collect())
        } else {
            // A tenant sees itself only.
            Ok(self.store.get_tenant(caller).await?.iter().map(view).collect())
        }
    }

    pub async fn delete_tenant(&self, caller: &str, id: &str) -> Result<()> {
        require_platform(caller)?;
        if id == PLATFORM {
            return Err(Error::Conflict("the platform tenant cannot be removed".into()));
        }
        if !self.store.delete_tenant(id).await? {
            return Err(Error::NotFound(format!("tenant '{id}'")));
        }
        tracing::info!(tenant = %id, "tenant removed");
        Ok(())
    }

    /// The tenant's name, for display names and templates.
    pub async fn tenant_name(&self, id: &str) -> Result<String> {
        Ok(self
            .store
            .get_tenant(id)
            .await?
            .map(|t| t.name)
            .unwrap_or_else(|| id.to_string()))
    }
}

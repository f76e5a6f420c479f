//! Tenants: the platform admin creates them; each gets its own admin token,
//! shown once, and sees only its own accounts, messages, rules and settings.

use crate::error::{Error, Result};
use crate::rules::Rules;
use crate::store::PLATFORM;
use crate::store::Store;
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

/// Tenants and the API tokens that act for them.
#[derive(Clone)]
pub struct Tenants {
    store: Store,
    /// Every tenant gets the built-in rules.
    rules: Rules,
    /// HERALD_ADMIN_TOKEN: accepted as the platform admin's token.
    admin_token: Option<String>,
}

impl Tenants {
    /// The service over the store.
    pub fn new(store: Store, rules: Rules, admin_token: Option<String>) -> Tenants {
        Tenants {
            store,
            rules,
            admin_token,
        }
    }

    /// The tenant an API token acts for, if any (compared in constant time
    /// with HERALD_ADMIN_TOKEN, looked up by hash otherwise).
    pub async fn caller_for_token(&self, token: &str) -> Result<Option<String>> {
        if let Some(admin) = &self.admin_token {
            use subtle::ConstantTimeEq;
            if bool::from(admin.as_bytes().ct_eq(token.as_bytes())) {
                return Ok(Some(PLATFORM.to_string()));
            }
        }
        Ok(self.store.tenant_for_token(&crate::secrets::token_hash(token)).await?)
    }

    /// On a first start without `HERALD_ADMIN_TOKEN`, creates the platform
    /// admin's token and answers it, to be shown once.
    pub async fn bootstrap_admin_token(&self) -> Result<Option<String>> {
        if self.admin_token.is_some() || self.store.count_tokens(PLATFORM).await? > 0 {
            return Ok(None);
        }
        let token = crate::secrets::new_token();
        self.store
            .insert_token(&crate::secrets::token_hash(&token), PLATFORM, "first start")
            .await?;
        Ok(Some(token))
    }

    /// Creates another platform admin token (`herald token create`).
    pub async fn create_admin_token(&self, label: &str) -> Result<String> {
        let token = crate::secrets::new_token();
        self.store
            .insert_token(&crate::secrets::token_hash(&token), PLATFORM, label)
            .await?;
        Ok(token)
    }

    /// Whether the tenant exists.
    pub async fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.store.get_tenant(id).await?.is_some())
    }

    /// Creates a tenant with its admin token and built-in rules.
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
        self.rules.ensure_system_rules(&row.id).await?;
        tracing::info!(tenant = %row.id, "tenant created");
        Ok(CreatedTenant {
            id: row.id,
            name: row.name,
            token,
        })
    }

    /// The tenants the caller may see: all for the platform, itself for a tenant.
    pub async fn list_tenants(&self, caller: &str) -> Result<Vec<TenantView>> {
        if caller == PLATFORM {
            Ok(self.store.list_tenants().await?.iter().map(view).collect())
        } else {
            // A tenant sees itself only.
            Ok(self.store.get_tenant(caller).await?.iter().map(view).collect())
        }
    }

    /// Removes a tenant and everything it owns.
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
}

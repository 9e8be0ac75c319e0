//! Run-time response-shaping policies: set through the admin API, kept in the store, compiled
//! into one [`ShapingOverrides`] snapshot per change and swapped in whole, so the exposure stage
//! reads them lock-free on every response. A change made on one node reaches the others like a
//! suspension does: the change bus first, the change-counter poll as the backstop.

use std::sync::Arc;
use std::time::Duration;

use portcullis_exposure::{ArrayCap, OverrideRule, Shape, ShapeConfig, ShapeSubject, ShapingOverrides};
use portcullis_store::shared::ChangeKind;
use portcullis_store::{NewShapingPolicy, PolicyShape, PolicySubject, ShapingPolicy};
use serde_json::json;

use crate::admin::AdminError;
use crate::service::{IdentityService, unix_now};

/// Compiles a stored shape (pointer syntax, entry counts).
pub fn compile_shape(shape: &PolicyShape) -> Result<Shape, String> {
    ShapeConfig {
        allow: shape.allow.clone(),
        max_items: shape
            .max_items
            .iter()
            .map(|c| ArrayCap { pointer: c.pointer.clone(), max: usize::try_from(c.max).unwrap_or(usize::MAX) })
            .collect(),
        max_items_everywhere: shape.max_items_everywhere.map(|m| usize::try_from(m).unwrap_or(usize::MAX)),
    }
    .compile()
    .map_err(|e| e.to_string())
}

fn subject(s: &PolicySubject) -> ShapeSubject {
    match s {
        PolicySubject::Consumer(n) => ShapeSubject::Consumer(Arc::from(n.as_str())),
        PolicySubject::Organization(n) => ShapeSubject::Org(Arc::from(n.as_str())),
        PolicySubject::Plan(n) => ShapeSubject::Plan(Arc::from(n.as_str())),
    }
}

/// The snapshot of these policies. A stored shape that no longer compiles (written by another
/// version) is left out and logged; every shape is compiled before it is stored, so this does
/// not happen between nodes of one version.
pub fn compile_overrides(list: &[ShapingPolicy]) -> ShapingOverrides {
    ShapingOverrides::new(list.iter().filter_map(|p| match compile_shape(&p.shape) {
        Ok(shape) => Some((
            Arc::from(p.route.as_str()),
            OverrideRule { subject: subject(&p.subject), shape: Arc::new(shape), expires_at: p.expires_at },
        )),
        Err(e) => {
            metrics::counter!("portcullis_exposure_policy_errors_total").increment(1);
            tracing::error!(policy = %p.id, route = %p.route, error = %e, "stored shaping policy does not compile; ignored");
            None
        }
    }))
}

impl IdentityService {
    /// Sets the shaping policy of a subject on a route (replacing the one it had), with a reason
    /// and an optional duration. Consumers and organizations must exist; the caller checks the
    /// route and the plan (against the configured traffic plans). Applies on every node within a second.
    pub async fn set_shaping_policy(
        &self,
        actor: &str,
        route: &str,
        subject: PolicySubject,
        shape: PolicyShape,
        reason: &str,
        duration: Option<Duration>,
    ) -> Result<ShapingPolicy, AdminError> {
        if reason.trim().is_empty() {
            return Err(AdminError::Invalid("a shaping policy needs a reason".into()));
        }
        compile_shape(&shape).map_err(AdminError::Invalid)?;
        match &subject {
            PolicySubject::Consumer(n) => {
                self.consumer_named(n).await?;
            }
            PolicySubject::Organization(n) => {
                self.org_named(n).await?;
            }
            PolicySubject::Plan(_) => {}
        }
        let now = unix_now();
        let new = NewShapingPolicy {
            route: route.to_owned(),
            subject,
            shape,
            reason: reason.to_owned(),
            expires_at: duration.map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
            created_at: now,
            created_by: actor.to_owned(),
        };
        let store = self.store().clone();
        let p = self.io(async move { Ok(store.put_shaping_policy(new).await?) }).await?;
        self.write_audit_entry(
            actor,
            "policy.set",
            &p.id,
            json!({
                "route": p.route,
                "subject": p.subject,
                "shape": p.shape,
                "reason": p.reason,
                "expires_at": p.expires_at,
            }),
        )
        .await?;
        self.publish_change(ChangeKind::Policy, Some(p.id.clone())).await;
        Ok(p)
    }

    /// Deletes a subject's shaping policy on a route; returns whether there was one. The route's
    /// configured shaping applies again.
    pub async fn delete_shaping_policy(
        &self,
        actor: &str,
        route: &str,
        subject: &PolicySubject,
        reason: Option<&str>,
    ) -> Result<bool, AdminError> {
        let store = self.store().clone();
        let (r, s) = (route.to_owned(), subject.clone());
        let deleted = self.io(async move { Ok(store.delete_shaping_policy(&r, &s).await?) }).await?;
        self.write_audit_entry(
            actor,
            "policy.delete",
            route,
            json!({ "route": route, "subject": subject, "reason": reason, "deleted": deleted }),
        )
        .await?;
        self.publish_change(ChangeKind::Policy, None).await;
        Ok(deleted)
    }

    /// Shaping policies in force now, oldest first; only those of `route` if given.
    pub async fn list_shaping_policies(&self, route: Option<&str>) -> Result<Vec<ShapingPolicy>, AdminError> {
        let store = self.store().clone();
        let mut list = self.io(async move { Ok(store.active_shaping_policies(unix_now()).await?) }).await?;
        if let Some(route) = route {
            list.retain(|p| p.route == route);
        }
        Ok(list)
    }

    /// The policy of a subject on a route, if one is in force.
    pub async fn shaping_policy(
        &self,
        route: &str,
        subject: &PolicySubject,
    ) -> Result<Option<ShapingPolicy>, AdminError> {
        Ok(self.list_shaping_policies(Some(route)).await?.into_iter().find(|p| p.subject == *subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_store::PolicyArrayCap;

    fn policy(route: &str, subject: PolicySubject, allow: &[&str]) -> ShapingPolicy {
        ShapingPolicy {
            id: format!("{route}-{}", subject.name()),
            route: route.into(),
            subject,
            shape: PolicyShape {
                allow: allow.iter().map(|s| (*s).to_owned()).collect(),
                max_items: vec![PolicyArrayCap { pointer: "/items".into(), max: 1 }],
                max_items_everywhere: None,
            },
            reason: "r".into(),
            expires_at: None,
            created_at: 0,
            created_by: "a".into(),
        }
    }

    #[test]
    fn stored_policies_compile_into_a_snapshot_and_broken_ones_are_left_out() {
        let list = vec![
            policy("customers", PolicySubject::Consumer("partner-x".into()), &["/items"]),
            policy("customers", PolicySubject::Plan("free".into()), &["no-leading-slash"]),
            policy("orders", PolicySubject::Organization("acme".into()), &[]),
        ];
        let snapshot = compile_overrides(&list);
        assert_eq!(snapshot.len(), 2);
        assert_eq!(snapshot.route("customers").len(), 1);
        assert_eq!(snapshot.route("customers")[0].subject, ShapeSubject::Consumer("partner-x".into()));
        assert_eq!(snapshot.route("orders")[0].subject, ShapeSubject::Org("acme".into()));
        assert!(compile_shape(&list[1].shape).is_err());
    }
}

//! What the API server does to a write between decoding it and storing it, besides
//! defaulting and validation: custom resources pruned and defaulted from their CRD's
//! schema (`pruning.rs`), with `fieldValidation` deciding what unknown fields cost;
//! server-side apply's refusal of fields a schema does not declare; and the
//! ServiceAccount admission plugin for Pods.

use serde_json::{Value, json};

use super::pruning;
use super::registry::ResourceType;
use super::status::{ApiError, ApiResult, Resource};
use super::store::{ObjRef, Store};
use super::write::WriteOptions;

/// `fieldValidation`: what happens to fields a custom resource's schema does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped, with a `Warning` header each (the default since v1.27).
    #[default]
    Warn,
    /// The request fails with 400 BadRequest.
    Strict,
}

/// The schema custom resources of `rt` are pruned, defaulted and validated with.
pub(crate) fn custom_schema(rt: &ResourceType) -> Option<&Value> {
    rt.schema.as_ref().filter(|s| rt.custom && s.is_object())
}

impl Store {
    /// Custom resources: drops the fields their CRD's schema does not specify (which
    /// `fieldValidation=Strict` refuses and `Warn` warns about), then applies its
    /// defaults.
    pub(crate) fn prune_custom(
        &mut self,
        rt: &ResourceType,
        obj: &mut Value,
        o: &WriteOptions,
        defaults: bool,
    ) -> ApiResult<()> {
        let Some(schema) = custom_schema(rt) else {
            return Ok(());
        };
        let unknown = pruning::prune(schema, obj);
        if !unknown.is_empty() {
            let each: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect();
            match o.field_validation {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        each.join(", ")
                    )));
                }
                FieldValidation::Warn => self.warnings.extend(each),
                FieldValidation::Ignore => {}
            }
        }
        if defaults {
            pruning::apply_defaults(schema, obj);
        }
        Ok(())
    }

    /// Server-side apply converts the configuration to a typed object first, whatever
    /// `fieldValidation` says: a field the CRD's schema does not declare fails the
    /// request with a 500 and no reason (kubernetes/kubernetes#139253), where other
    /// writes would only drop it.
    pub(crate) fn undeclared_fields(
        rt: &ResourceType,
        ns: &str,
        name: &str,
        config: &Value,
    ) -> ApiResult<()> {
        let Some(schema) = custom_schema(rt) else {
            return Ok(());
        };
        let unknown = pruning::prune(schema, &mut config.clone());
        let errors: Vec<String> = unknown
            .iter()
            .map(|f| format!(".{f}: field not declared in schema"))
            .collect();
        let detail = match errors.as_slice() {
            [] => return Ok(()),
            [one] => one.clone(),
            many => format!("errors:\n  {}", many.join("\n  ")),
        };
        let gv = config["apiVersion"].as_str().unwrap_or_default();
        let gv = if gv.contains('/') {
            gv.to_string()
        } else {
            format!("/{gv}")
        };
        Err(ApiError::unclassified(format!(
            "failed to create typed patch object ({ns}/{name}; {gv}, Kind={}): {detail}",
            rt.kind
        )))
    }

    /// The ServiceAccount admission plugin: a Pod runs as `default` unless it names
    /// another, which must exist (403 otherwise, as before the namespace's `default`
    /// ServiceAccount is created).
    pub(crate) fn admit_pod(&self, ns: &str, name: &str, pod: &mut Value) -> ApiResult<()> {
        let sa = match pod["spec"]["serviceAccountName"].as_str() {
            Some(sa) if !sa.is_empty() => sa.to_string(),
            _ => {
                pod["spec"]["serviceAccountName"] = json!("default");
                "default".to_string()
            }
        };
        let sa_ref = ObjRef {
            key: ("".into(), "serviceaccounts".into()),
            namespace: ns.into(),
            name: sa.clone(),
        };
        if self.object(&sa_ref).is_some() {
            return Ok(());
        }
        let pods = Resource {
            group: String::new(),
            plural: "pods".into(),
            kind: "Pod".into(),
        };
        Err(ApiError::forbidden(
            &pods,
            name,
            &format!(
                "error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
            ),
        ))
    }
}

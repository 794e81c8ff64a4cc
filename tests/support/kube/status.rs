//! Errors as the API server sends them: a `meta/v1 Status` body with the HTTP code, a
//! machine-readable `reason` and `details`, so that kube-rs turns them into
//! `kube::Error::Api` exactly as it does for a real cluster.

use serde_json::{Value, json};

/// What a resource is called in messages and `details`: `plural.group` (or `plural` in
/// the core group), which is how Kubernetes names a "qualified resource".
#[derive(Clone, Debug)]
pub(crate) struct Resource {
    pub group: String,
    pub plural: String,
    pub kind: String,
}

impl Resource {
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

/// One field-level problem of an `Invalid` (422) answer.
#[derive(Clone, Debug)]
pub(crate) struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn required(field: impl Into<String>, message: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: message.into(),
        }
    }

    /// A value of the wrong JSON type; `message` starts with the value.
    pub fn type_invalid(field: impl Into<String>, message: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueTypeInvalid",
            field: field.into(),
            message: message.into(),
        }
    }

    /// A value outside an enum; `message`: `"x": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, message: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn too_long(field: impl Into<String>, message: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn too_many(field: impl Into<String>, message: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueTooMany",
            field: field.into(),
            message: message.into(),
        }
    }

    /// A repeated item of a set or map list; `value` as shown.
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: value.into(),
        }
    }

    /// How `field.Error.Error()` renders it: `spec.x: Invalid value: ...`.
    fn render(&self) -> String {
        let kind = match self.reason {
            "FieldValueForbidden" => "Forbidden",
            "FieldValueRequired" => "Required value",
            "FieldValueNotSupported" => "Unsupported value",
            "FieldValueTooLong" => "Too long",
            "FieldValueTooMany" => "Too many",
            "FieldValueDuplicate" => "Duplicate value",
            _ => "Invalid value",
        };
        if self.message.is_empty() {
            format!("{}: {kind}", self.field)
        } else {
            format!("{}: {kind}: {}", self.field, self.message)
        }
    }
}

/// A failed request, rendered as a `Status` object.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429 and some 5xx).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn not_found(resource: &Resource, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified()),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.plural}))
    }

    /// An URL that names no known resource (what the real server answers for a typo in a
    /// group or plural, or for a kind whose CRD is not installed).
    pub fn unknown_path() -> ApiError {
        ApiError::new(404, "NotFound", "the server could not find the requested resource")
            .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}))
    }

    pub fn already_exists(resource: &Resource, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified()),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.plural}))
    }

    /// The optimistic-concurrency failure every controller must retry on.
    pub fn conflict(resource: &Resource, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                resource.qualified()
            ),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.plural}))
    }

    pub fn stale(resource: &Resource, name: &str) -> ApiError {
        ApiError::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn invalid(resource: &Resource, name: &str, causes: Vec<Cause>) -> ApiError {
        let rendered: Vec<String> = causes.iter().map(Cause::render).collect();
        let message = match rendered.as_slice() {
            [one] => format!("{} \"{name}\" is invalid: {one}", resource.qualified_kind()),
            many => format!(
                "{} \"{name}\" is invalid: [{}]",
                resource.qualified_kind(),
                many.join(", ")
            ),
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.render(), "field": c.field}))
            .collect();
        ApiError::new(422, "Invalid", message).with_details(
            json!({"name": name, "group": resource.group, "kind": resource.kind, "causes": causes}),
        )
    }

    /// A 422 without a field, as the server answers a JSON patch whose `test` fails.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "Invalid", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn forbidden(resource: &Resource, name: &str, why: &str) -> ApiError {
        ApiError::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", resource.qualified()),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.plural}))
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
            ),
        )
    }

    /// A watch asked for history the server no longer has: the client must re-list.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// What the server answers for an error it did not turn into a Status (HTTP 500
    /// without a reason), e.g. server-side apply of a field a schema does not declare.
    pub fn unclassified(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty()
            && let Some(m) = status.as_object_mut()
        {
            // an error the server did not classify: no reason at all
            m.remove("reason");
        }
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        if let Some(seconds) = self.retry_after {
            status["details"]["retryAfterSeconds"] = json!(seconds);
        }
        status
    }
}

/// The `Status` a successful DELETE returns for kinds whose store does not return the
/// deleted object (ConfigMaps, Secrets, ...).
pub(crate) fn success(resource: &Resource, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": resource.group, "kind": resource.plural, "uid": uid},
    })
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

//! The OpenAPI 3.1 document, generated from the routing table so it cannot drift.

use serde_json::{Map, Value, json};

use super::router::{Access, ROUTES};

/// Sample parameter values used to build each route (to learn its access level).
fn sample(name: &str) -> &'static str {
    match name {
        "slug" => "example",
        "event_id" => "1",
        _ => "00000000-0000-0000-0000-000000000000",
    }
}

/// The whole document.
#[must_use]
pub fn document() -> Value {
    let mut paths = Map::new();
    for spec in ROUTES {
        let params: Vec<&str> = spec
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let samples: Vec<&str> = params.iter().map(|p| sample(p)).collect();
        let access = spec.build(&samples).map_or(Access::Public, |r| r.access());
        let name = spec.build(&samples).map_or("unknown", |r| r.name());
        let security = match access {
            Access::Public => json!([]),
            Access::Any => json!([{"bearerJwt": []}, {"apiKey": []}]),
            Access::Session | Access::Admin => json!([{"bearerJwt": []}]),
        };
        let parameters: Vec<Value> = params
            .iter()
            .map(|p| {
                let ty = if *p == "event_id" {
                    "integer"
                } else {
                    "string"
                };
                json!({"name": p, "in": "path", "required": true, "schema": {"type": ty}})
            })
            .collect();
        let ok = if spec.summary.starts_with("Create") || spec.summary.starts_with("Add") {
            "201"
        } else {
            "200"
        };
        let mut op = json!({
            "operationId": name,
            "summary": spec.summary,
            "security": security,
            "responses": {
                ok: {"description": "Success envelope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Success"}}}},
                "default": {"description": "Error envelope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if access == Access::Admin {
            op["description"] = json!("Requires a session of an admin.");
        }
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        let entry = paths
            .entry(spec.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[spec.method.as_str().to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Posta authentication", "version": crate::version::VERSION},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "http", "scheme": "bearer", "description": "posta_… API key"},
            },
            "schemas": {
                "Success": {"type": "object", "required": ["success", "data"], "properties": {
                    "success": {"const": true}, "data": {}, "pageable": {"type": "object"}}},
                "Error": {"type": "object", "required": ["success", "data", "error"], "properties": {
                    "success": {"const": false}, "data": {},
                    "error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}},
            },
        },
    })
}

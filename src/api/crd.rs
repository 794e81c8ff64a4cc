//! The CustomResourceDefinitions, as objects and as the YAML committed in `crds/` and printed
//! by `servicedb crd`. `tests/crds.rs` fails when `crds/` differs from this output.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{DatabaseServer, ServiceDatabase, Tenant};

/// The three CRDs, in a fixed order: DatabaseServer, ServiceDatabase, Tenant.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![DatabaseServer::crd(), ServiceDatabase::crd(), Tenant::crd()]
}

/// One `(file name, YAML)` per CRD, as in `crds/`: `servicedb.io_<plural>.yaml`.
pub fn crd_files() -> Vec<(String, String)> {
    crds()
        .into_iter()
        .map(|crd| {
            let file = format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural);
            (file, to_yaml(&crd))
        })
        .collect()
}

/// All CRDs as one multi-document YAML stream, each document starting with `---`.
pub fn crd_yaml() -> String {
    crd_files()
        .into_iter()
        .map(|(_, yaml)| format!("---\n{yaml}"))
        .collect()
}

fn to_yaml(crd: &CustomResourceDefinition) -> String {
    // Serializing a k8s-openapi struct to YAML cannot fail: it is plain data with string keys.
    serde_yaml::to_string(crd).expect("a CustomResourceDefinition serializes to YAML")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_scope_and_subresources() {
        let crds = crds();
        let summary: Vec<_> = crds
            .iter()
            .map(|c| {
                (
                    c.metadata.name.clone().unwrap(),
                    c.spec.names.kind.clone(),
                    c.spec.scope.clone(),
                    c.spec.names.short_names.clone().unwrap(),
                    c.spec.names.categories.clone().unwrap(),
                )
            })
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            summary,
            vec![
                (
                    "databaseservers.servicedb.io".to_string(),
                    "DatabaseServer".to_string(),
                    "Cluster".to_string(),
                    s(&["dbs"]),
                    s(&["servicedb"])
                ),
                (
                    "servicedatabases.servicedb.io".to_string(),
                    "ServiceDatabase".to_string(),
                    "Namespaced".to_string(),
                    s(&["sdb"]),
                    s(&["servicedb"])
                ),
                (
                    "tenants.servicedb.io".to_string(),
                    "Tenant".to_string(),
                    "Namespaced".to_string(),
                    s(&["tn"]),
                    s(&["servicedb"])
                ),
            ]
        );
        for crd in &crds {
            assert_eq!(crd.spec.group, "servicedb.io");
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, "v1alpha1");
            assert!(version.served && version.storage);
            assert!(version.subresources.as_ref().unwrap().status.is_some());
            let columns = version.additional_printer_columns.as_ref().unwrap();
            assert_eq!(columns[0].name, "Ready");
            assert_eq!(
                columns[0].json_path,
                r#".status.conditions[?(@.type=="Ready")].status"#
            );
            assert_eq!(columns.last().unwrap().name, "Age");
        }
    }

    #[test]
    fn yaml_stream_is_the_files_in_order() {
        let files = crd_files();
        let names: Vec<_> = files.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "servicedb.io_databaseservers.yaml",
                "servicedb.io_servicedatabases.yaml",
                "servicedb.io_tenants.yaml"
            ]
        );
        let yaml = crd_yaml();
        assert!(yaml.starts_with("---\napiVersion: apiextensions.k8s.io/v1\n"));
        assert_eq!(yaml.matches("\n---\n").count() + 1, 3);
        for (_, doc) in &files {
            let back: CustomResourceDefinition = serde_yaml::from_str(doc).unwrap();
            assert!(crds().contains(&back));
        }
    }
}

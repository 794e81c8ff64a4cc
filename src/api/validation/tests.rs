//! Table tests of every validation rule.

use super::*;
use crate::api::database_server::{DatabaseServerSpec, SecretKeyRef, SecretRef};
use crate::api::service_database::{
    MigrationJobSpec, MigrationsSpec, PasswordRotationSpec, RoleAccess, RolloutSpec, SecretSpec,
    SeedSpec, ServiceDatabaseSpec,
};
use crate::api::tenant::TenantSpec;

fn sdb(spec: ServiceDatabaseSpec) -> ServiceDatabase {
    let mut sdb = ServiceDatabase::new("orders", spec);
    sdb.metadata.namespace = Some("shop".into());
    sdb
}

fn server(spec: DatabaseServerSpec) -> DatabaseServer {
    DatabaseServer::new("main", spec)
}

fn server_spec() -> DatabaseServerSpec {
    DatabaseServerSpec {
        host: "postgres.databases.svc".into(),
        port: 5432,
        client_host: None,
        client_port: None,
        ssl_mode: Default::default(),
        ca_secret_ref: None,
        admin_secret_ref: SecretRef {
            namespace: "servicedb-system".into(),
            name: "pg-admin".into(),
        },
        default: true,
        max_databases: Some(500),
        environment: Default::default(),
    }
}

fn role(name: &str) -> ExtraRoleSpec {
    ExtraRoleSpec {
        name: name.into(),
        access: RoleAccess::Read,
        connection_limit: None,
        secret_name: None,
    }
}

/// Runs validation and returns the errors as displayed.
fn errors(sdb: &ServiceDatabase) -> Vec<String> {
    match validate_service_database(sdb) {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn db_name_errors(db: &str) -> Vec<String> {
    errors(&sdb(ServiceDatabaseSpec {
        database_name: Some(db.into()),
        ..Default::default()
    }))
}

#[test]
fn message_format_is_exact() {
    assert_eq!(
        db_name_errors("Orders-DB"),
        vec![
            r#"spec.databaseName: "Orders-DB" is not a valid name: lower-case letters, digits and _, starting with a letter, at most 63 bytes"#
        ]
    );
}

#[test]
fn database_names() {
    let ok = [
        "orders",
        "shop_orders",
        "a",
        "o2",
        &format!("a{}", "b".repeat(62)),
    ];
    for db in ok {
        assert_eq!(db_name_errors(db), Vec::<String>::new(), "{db}");
    }
    let bad = [
        "",
        "Orders",
        "1orders",
        "_orders",
        "orders-db",
        "orders db",
        "orders;",
        "\"; DROP DATABASE x; --",
        "orders'",
        "ordérs",
        "заказы",
        &format!("a{}", "b".repeat(63)),
        "orders\n",
        " orders",
    ];
    for db in bad {
        let errs = db_name_errors(db);
        assert_eq!(errs.len(), 1, "{db:?}: {errs:?}");
        assert!(errs[0].contains("is not a valid name"), "{}", errs[0]);
    }
    for db in ["postgres", "template0", "template1", "pg_orders"] {
        let errs = db_name_errors(db);
        assert_eq!(errs.len(), 1, "{db:?}: {errs:?}");
        assert!(errs[0].contains("is reserved"), "{}", errs[0]);
    }
}

#[test]
fn hostile_values_are_quoted_in_messages() {
    let errs = db_name_errors("x\"; DROP DATABASE y; --\n");
    assert_eq!(
        errs[0],
        r#"spec.databaseName: "x\"; DROP DATABASE y; --\n" is not a valid name: lower-case letters, digits and _, starting with a letter, at most 63 bytes"#
    );
    let errs = db_name_errors(&"x".repeat(500));
    assert!(errs[0].len() < 300, "long values are cut: {}", errs[0]);
}

#[test]
fn a_complete_valid_spec_passes() {
    let spec = ServiceDatabaseSpec {
        server: Some("main".into()),
        database_name: Some("shop_orders".into()),
        owner: Some(LoginRoleSpec {
            connection_limit: Some(5),
        }),
        app: Some(LoginRoleSpec {
            connection_limit: Some(-1),
        }),
        extensions: vec!["pgcrypto".into(), "uuid-ossp".into()],
        schemas: vec!["orders".into(), "public".into()],
        roles: vec![
            role("reporting"),
            ExtraRoleSpec {
                access: RoleAccess::Owner,
                connection_limit: Some(10000),
                secret_name: Some("orders-admin".into()),
                ..role("admin")
            },
        ],
        secret: Some(SecretSpec {
            name: Some("orders-db".into()),
            template: [(
                "SPRING_DATASOURCE_URL".to_string(),
                "jdbc:postgresql://{{ host }}:{{ port }}/{{ database }}".to_string(),
            )]
            .into(),
            ..Default::default()
        }),
        migrations: Some(MigrationsSpec {
            config_maps: vec!["orders-migrations".into()],
            target_version: Some("7".into()),
            seed: Some(SeedSpec {
                config_maps: vec!["orders-seed".into()],
            }),
            job: Some(MigrationJobSpec {
                image: Some("ghcr.io/acme/servicedb:1.2.3@sha256:abc".into()),
                service_account_name: Some("orders-migrator".into()),
                backoff_limit: Some(0),
                active_deadline_seconds: Some(600),
                ttl_seconds_after_finished: Some(0),
                ..Default::default()
            }),
            rollout: None,
        }),
        password_rotation: Some(PasswordRotationSpec {
            every: "720h".into(),
        }),
        ..Default::default()
    };
    assert_eq!(errors(&sdb(spec)), Vec::<String>::new());
    assert_eq!(
        errors(&sdb(ServiceDatabaseSpec::default())),
        Vec::<String>::new()
    );
}

/// Table: a spec, and the path and rule fragment of the single error it must produce.
#[test]
fn each_field_is_checked() {
    let migrations = |m: MigrationsSpec| ServiceDatabaseSpec {
        migrations: Some(m),
        ..Default::default()
    };
    let job = |j: MigrationJobSpec| {
        migrations(MigrationsSpec {
            job: Some(j),
            ..Default::default()
        })
    };
    let template = |key: &str, value: &str| ServiceDatabaseSpec {
        secret: Some(SecretSpec {
            template: [(key.to_string(), value.to_string())].into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let roles = |roles: Vec<ExtraRoleSpec>| ServiceDatabaseSpec {
        roles,
        ..Default::default()
    };
    let rotation = |every: &str| ServiceDatabaseSpec {
        password_rotation: Some(PasswordRotationSpec {
            every: every.into(),
        }),
        ..Default::default()
    };
    let limit = |n: i32| ServiceDatabaseSpec {
        app: Some(LoginRoleSpec {
            connection_limit: Some(n),
        }),
        ..Default::default()
    };
    let cases: Vec<(ServiceDatabaseSpec, &str, &str)> = vec![
        (
            ServiceDatabaseSpec {
                server: Some("Main".into()),
                ..Default::default()
            },
            "spec.server",
            "is not a valid Kubernetes name",
        ),
        (
            limit(0),
            "spec.app.connectionLimit",
            "-1 (no limit) or 1 to 10000",
        ),
        (
            limit(-2),
            "spec.app.connectionLimit",
            "-1 (no limit) or 1 to 10000",
        ),
        (
            limit(10001),
            "spec.app.connectionLimit",
            "-1 (no limit) or 1 to 10000",
        ),
        (
            ServiceDatabaseSpec {
                owner: Some(LoginRoleSpec {
                    connection_limit: Some(0),
                }),
                ..Default::default()
            },
            "spec.owner.connectionLimit",
            "connection limit",
        ),
        (
            ServiceDatabaseSpec {
                extensions: vec!["pgcrypto; DROP".into()],
                ..Default::default()
            },
            "spec.extensions[0]",
            "is not a valid extension name",
        ),
        (
            ServiceDatabaseSpec {
                extensions: vec!["pgcrypto".into(), "pgcrypto".into()],
                ..Default::default()
            },
            "spec.extensions[1]",
            "appears more than once",
        ),
        (
            ServiceDatabaseSpec {
                schemas: vec!["Orders".into()],
                ..Default::default()
            },
            "spec.schemas[0]",
            "is not a valid name",
        ),
        (
            ServiceDatabaseSpec {
                schemas: vec!["pg_temp".into()],
                ..Default::default()
            },
            "spec.schemas[0]",
            "starting with pg_",
        ),
        (
            ServiceDatabaseSpec {
                schemas: vec!["information_schema".into()],
                ..Default::default()
            },
            "spec.schemas[0]",
            "is reserved",
        ),
        (
            ServiceDatabaseSpec {
                schemas: vec!["a".into(), "b".into(), "a".into()],
                ..Default::default()
            },
            "spec.schemas[2]",
            "appears more than once",
        ),
        (
            roles(vec![role("read-only")]),
            "spec.roles[0].name",
            "is not a valid name",
        ),
        (
            roles(vec![role("owner")]),
            "spec.roles[0].name",
            "owner role",
        ),
        (roles(vec![role("app")]), "spec.roles[0].name", "app role"),
        (
            roles(vec![role("reporting"), role("reporting")]),
            "spec.roles[1]",
            "appears more than once",
        ),
        (
            roles(vec![ExtraRoleSpec {
                connection_limit: Some(0),
                ..role("reporting")
            }]),
            "spec.roles[0].connectionLimit",
            "connection limit",
        ),
        (
            roles(vec![ExtraRoleSpec {
                secret_name: Some("orders_reporting".into()),
                ..role("reporting")
            }]),
            "spec.roles[0].secretName",
            "is not a valid Kubernetes name",
        ),
        (
            roles(vec![ExtraRoleSpec {
                secret_name: Some("orders-db".into()),
                ..role("reporting")
            }]),
            "spec.roles[0].secretName",
            "is already used by the app Secret",
        ),
        (
            roles(vec![ExtraRoleSpec {
                secret_name: Some("orders-migrator".into()),
                ..role("reporting")
            }]),
            "spec.roles[0].secretName",
            "is already used by the migrator Secret",
        ),
        (
            ServiceDatabaseSpec {
                secret: Some(SecretSpec {
                    name: Some("orders-migrator".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "spec.secret.name",
            "is the migrator Secret's name",
        ),
        (
            ServiceDatabaseSpec {
                secret: Some(SecretSpec {
                    name: Some("Orders DB".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "spec.secret.name",
            "is not a valid Kubernetes name",
        ),
        (
            template("bad key", "x"),
            "spec.secret.template",
            "is not a valid Secret key",
        ),
        (
            template("..x", "x"),
            "spec.secret.template",
            "is not a valid Secret key",
        ),
        (
            template("DATABASE_URL", "x"),
            "spec.secret.template",
            "always writes",
        ),
        (
            template("URL", "postgres://{{ hostname }}/"),
            "spec.secret.template.URL",
            "uses unknown placeholder {{ hostname }}",
        ),
        (
            template("URL", "{{ host "),
            "spec.secret.template.URL",
            "without a closing",
        ),
        (
            migrations(MigrationsSpec {
                config_maps: vec!["orders_migrations".into()],
                ..Default::default()
            }),
            "spec.migrations.configMaps[0]",
            "is not a valid Kubernetes name",
        ),
        (
            migrations(MigrationsSpec {
                config_maps: vec!["a".into(), "a".into()],
                ..Default::default()
            }),
            "spec.migrations.configMaps[1]",
            "appears more than once",
        ),
        (
            migrations(MigrationsSpec {
                target_version: Some("v7".into()),
                ..Default::default()
            }),
            "spec.migrations.targetVersion",
            "is not a valid version",
        ),
        (
            migrations(MigrationsSpec {
                target_version: Some("1..2".into()),
                ..Default::default()
            }),
            "spec.migrations.targetVersion",
            "is not a valid version",
        ),
        (
            migrations(MigrationsSpec {
                seed: Some(SeedSpec::default()),
                ..Default::default()
            }),
            "spec.migrations.seed.configMaps",
            "at least one ConfigMap",
        ),
        (
            migrations(MigrationsSpec {
                seed: Some(SeedSpec {
                    config_maps: vec!["Seed".into()],
                }),
                ..Default::default()
            }),
            "spec.migrations.seed.configMaps[0]",
            "is not a valid Kubernetes name",
        ),
        (
            job(MigrationJobSpec {
                image: Some("busybox; rm -rf /".into()),
                ..Default::default()
            }),
            "spec.migrations.job.image",
            "is not a valid image reference",
        ),
        (
            job(MigrationJobSpec {
                image: Some(String::new()),
                ..Default::default()
            }),
            "spec.migrations.job.image",
            "is not a valid image reference",
        ),
        (
            job(MigrationJobSpec {
                service_account_name: Some("Migrator".into()),
                ..Default::default()
            }),
            "spec.migrations.job.serviceAccountName",
            "is not a valid Kubernetes name",
        ),
        (
            job(MigrationJobSpec {
                backoff_limit: Some(-1),
                ..Default::default()
            }),
            "spec.migrations.job.backoffLimit",
            "0 or more",
        ),
        (
            job(MigrationJobSpec {
                active_deadline_seconds: Some(0),
                ..Default::default()
            }),
            "spec.migrations.job.activeDeadlineSeconds",
            "at least 1",
        ),
        (
            job(MigrationJobSpec {
                ttl_seconds_after_finished: Some(-5),
                ..Default::default()
            }),
            "spec.migrations.job.ttlSecondsAfterFinished",
            "0 or more",
        ),
        (
            migrations(MigrationsSpec {
                rollout: Some(RolloutSpec::default()),
                ..Default::default()
            }),
            "spec.migrations.rollout",
            "applies only to tenancy: PerTenant",
        ),
        (
            ServiceDatabaseSpec {
                tenancy: Tenancy::PerTenant,
                migrations: Some(MigrationsSpec {
                    rollout: Some(RolloutSpec {
                        max_parallel: 0,
                        max_failures: 0,
                        batch_size: 1,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "spec.migrations.rollout.maxParallel",
            "at least 1",
        ),
        (
            ServiceDatabaseSpec {
                tenancy: Tenancy::PerTenant,
                migrations: Some(MigrationsSpec {
                    rollout: Some(RolloutSpec {
                        max_parallel: 4,
                        max_failures: -1,
                        batch_size: 1,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "spec.migrations.rollout.maxFailures",
            "0 or more",
        ),
        (
            ServiceDatabaseSpec {
                tenancy: Tenancy::PerTenant,
                migrations: Some(MigrationsSpec {
                    rollout: Some(RolloutSpec {
                        batch_size: 0,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "spec.migrations.rollout.batchSize",
            "must be 1 to 100",
        ),
        (
            ServiceDatabaseSpec {
                tenancy: Tenancy::PerTenant,
                migrations: Some(MigrationsSpec {
                    rollout: Some(RolloutSpec {
                        batch_size: 101,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "spec.migrations.rollout.batchSize",
            "must be 1 to 100",
        ),
        (
            rotation("soon"),
            "spec.passwordRotation.every",
            "is not a valid duration",
        ),
        (
            rotation(""),
            "spec.passwordRotation.every",
            "is not a valid duration",
        ),
        (
            rotation("59m"),
            "spec.passwordRotation.every",
            "is too short",
        ),
    ];
    for (spec, path, rule) in cases {
        let errs = errors(&sdb(spec.clone()));
        assert_eq!(errs.len(), 1, "{path}: expected one error, got {errs:?}");
        assert!(
            errs[0].starts_with(&format!("{path}: ")) && errs[0].contains(rule),
            "expected {path} ... {rule}, got {}",
            errs[0]
        );
    }
}

#[test]
fn boundaries_that_pass() {
    let ok = |spec: ServiceDatabaseSpec| {
        assert_eq!(errors(&sdb(spec.clone())), Vec::<String>::new(), "{spec:?}")
    };
    for every in ["1h", "60m", "720h", "30days", "1h 30m"] {
        ok(ServiceDatabaseSpec {
            password_rotation: Some(PasswordRotationSpec {
                every: every.into(),
            }),
            ..Default::default()
        });
    }
    for limit in [-1, 1, 10000] {
        ok(ServiceDatabaseSpec {
            owner: Some(LoginRoleSpec {
                connection_limit: Some(limit),
            }),
            ..Default::default()
        });
    }
    for version in ["1", "1.2", "2_0_1", "001"] {
        ok(ServiceDatabaseSpec {
            migrations: Some(MigrationsSpec {
                target_version: Some(version.into()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    ok(ServiceDatabaseSpec {
        tenancy: Tenancy::PerTenant,
        migrations: Some(MigrationsSpec {
            rollout: Some(RolloutSpec {
                max_parallel: 1,
                max_failures: 0,
                batch_size: 100,
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    ok(ServiceDatabaseSpec {
        secret: Some(SecretSpec {
            template: [
                (
                    "a.b-c_D".to_string(),
                    "{{host}}{{port}}{{database}}{{username}}{{password}}{{sslmode}}".to_string(),
                ),
                ("EMPTY".to_string(), String::new()),
            ]
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    });
}

#[test]
fn every_error_is_reported_at_once() {
    let spec = ServiceDatabaseSpec {
        database_name: Some("Bad".into()),
        schemas: vec!["Bad".into()],
        roles: vec![role("owner")],
        ..Default::default()
    };
    let errs = validate_service_database(&sdb(spec)).unwrap_err();
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["spec.databaseName", "spec.schemas[0]", "spec.roles[0].name"]
    );
    assert!(describe(&errs).contains("; spec.schemas[0]: "));
}

#[test]
fn metadata_is_checked() {
    let mut s = sdb(ServiceDatabaseSpec::default());
    s.metadata.name = None;
    assert_eq!(errors(&s), vec![r#"metadata.name: "" is required"#]);
    let mut s = sdb(ServiceDatabaseSpec::default());
    s.metadata.namespace = Some("Shop".into());
    assert_eq!(errors(&s).len(), 1);
    let mut s = sdb(ServiceDatabaseSpec::default());
    s.metadata.name = Some("orders_db".into());
    assert!(errors(&s)[0].starts_with("metadata.name: "));
}

#[test]
fn database_server_fields() {
    assert_eq!(validate_database_server(&server(server_spec())), Ok(()));
    let with = |f: &dyn Fn(&mut DatabaseServerSpec)| {
        let mut spec = server_spec();
        f(&mut spec);
        validate_database_server(&server(spec))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    type Change = Box<dyn Fn(&mut DatabaseServerSpec)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|s| s.host = String::new()),
            "spec.host: \"\" is not a valid host",
        ),
        (Box::new(|s| s.host = "db host".into()), "spec.host"),
        (Box::new(|s| s.host = "db,other".into()), "spec.host"),
        (Box::new(|s| s.host = "db';--".into()), "spec.host"),
        (
            Box::new(|s| s.port = 0),
            "spec.port: \"0\" is not a valid port",
        ),
        (Box::new(|s| s.port = 65536), "spec.port"),
        (
            Box::new(|s| s.client_host = Some(" ".into())),
            "spec.clientHost",
        ),
        (Box::new(|s| s.client_port = Some(-1)), "spec.clientPort"),
        (Box::new(|s| s.max_databases = Some(0)), "spec.maxDatabases"),
        (
            Box::new(|s| s.admin_secret_ref.namespace = "Sys".into()),
            "spec.adminSecretRef.namespace",
        ),
        (
            Box::new(|s| s.admin_secret_ref.namespace = String::new()),
            "spec.adminSecretRef.namespace",
        ),
        (
            Box::new(|s| s.admin_secret_ref.name = "pg/admin".into()),
            "spec.adminSecretRef.name",
        ),
        (
            Box::new(|s| {
                s.ca_secret_ref = Some(SecretKeyRef {
                    namespace: "servicedb-system".into(),
                    name: "pg-ca".into(),
                    key: "ca crt".into(),
                })
            }),
            "spec.caSecretRef.key",
        ),
        (
            Box::new(|s| {
                s.ca_secret_ref = Some(SecretKeyRef {
                    namespace: "a_b".into(),
                    name: "pg-ca".into(),
                    key: "ca.crt".into(),
                })
            }),
            "spec.caSecretRef.namespace",
        ),
    ];
    for (change, expected) in cases {
        let errs = with(&*change);
        assert_eq!(errs.len(), 1, "{expected}: {errs:?}");
        assert!(errs[0].starts_with(expected), "{expected}: {errs:?}");
    }
    for host in [
        "10.0.0.1",
        "::1",
        "[::1]",
        "db-1.example.com",
        "/var/run/postgresql",
        "localhost",
    ] {
        let mut spec = server_spec();
        spec.host = host.into();
        assert_eq!(validate_database_server(&server(spec)), Ok(()), "{host}");
    }
}

#[test]
fn tenant_fields() {
    let tenant = |spec: TenantSpec| {
        let mut t = Tenant::new("gym-42", spec);
        t.metadata.namespace = Some("fitbuddy".into());
        validate_tenant(&t)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        tenant(TenantSpec {
            services: vec!["app".into()],
            server: Some("main".into()),
            ..Default::default()
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        tenant(TenantSpec::default()),
        vec![
            r#"spec.services: "" must name at least one PerTenant ServiceDatabase in this namespace"#
        ]
    );
    assert_eq!(
        tenant(TenantSpec {
            services: vec!["app".into(), "App".into(), "app".into()],
            server: Some("main server".into()),
            ..Default::default()
        }),
        vec![
            r#"spec.services[1]: "App" is not a valid Kubernetes name: lower-case letters, digits, - and ., starting and ending with a letter or digit, at most 253 bytes"#,
            r#"spec.services[2]: "app" appears more than once"#,
            r#"spec.server: "main server" is not a valid Kubernetes name: lower-case letters, digits, - and ., starting and ending with a letter or digit, at most 253 bytes"#,
        ]
    );
}

#[test]
fn predicates() {
    assert!(is_subdomain("a.b-c.d"));
    assert!(!is_subdomain("a..b"));
    assert!(!is_subdomain("a.-b"));
    assert!(!is_subdomain(&"a".repeat(254)));
    assert!(is_subdomain(&"a".repeat(253)));
    assert!(is_label(&"a".repeat(63)));
    assert!(!is_label(&"a".repeat(64)));
    assert!(!is_label("a.b"));
    assert!(is_extension_name("uuid-ossp"));
    assert!(!is_identifier("uuid-ossp"));
    assert!(is_secret_key(".env"));
    assert!(!is_secret_key(".."));
    assert!(!is_secret_key("a/b"));
}

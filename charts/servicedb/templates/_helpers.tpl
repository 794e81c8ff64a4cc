{{/* Names and labels shared by every template. */}}

{{- define "servicedb.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name alone when it already says servicedb. */}}
{{- define "servicedb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "servicedb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "servicedb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "servicedb.labels" -}}
{{ include "servicedb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "servicedb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "servicedb.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "servicedb.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where the Lease lives: the configured namespace, else the release's (the pod's own). */}}
{{- define "servicedb.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace -}}
{{- end -}}

{{/* Values that would make a broken install fail at render time, with the key to fix. */}}
{{- define "servicedb.validate" -}}
{{- if not (has .Values.logFormat (list "json" "text")) -}}
{{- fail (printf "logFormat must be json or text, got %q" .Values.logFormat) -}}
{{- end -}}
{{- if not (hasSuffix (printf ":%v" .Values.metrics.port) .Values.metrics.addr) -}}
{{- fail (printf "metrics.addr %q must end in the port metrics.port (%v): the probes and the Service use that port" .Values.metrics.addr .Values.metrics.port) -}}
{{- end -}}
{{- end -}}

{{/*
RBAC rules, one list per scope, each with why the operator needs it. Verbs are those the
code uses; nothing more.
*/}}

{{/* Cluster-scoped objects: always in a ClusterRole. */}}
{{- define "servicedb.rules.cluster" -}}
# DatabaseServers are cluster-scoped: the DatabaseServer controller watches them (get, list,
# watch) and adds/removes its finalizer (patch, update).
- apiGroups: ["servicedb.io"]
  resources: ["databaseservers"]
  verbs: ["get", "list", "watch", "patch", "update"]
# Their status (serverVersion, databaseCount, conditions) through the status subresource.
- apiGroups: ["servicedb.io"]
  resources: ["databaseservers/status"]
  verbs: ["get", "patch", "update"]
{{- if not .Values.installationId }}
# No installationId set: the operator derives it from the kube-system namespace's uid, so it
# reads that one namespace and no other.
- apiGroups: [""]
  resources: ["namespaces"]
  resourceNames: ["kube-system"]
  verbs: ["get"]
{{- end }}
{{- end -}}

{{/* Objects in the watched namespaces: a ClusterRole, or a Role under watchNamespace. */}}
{{- define "servicedb.rules.namespaced" -}}
# ServiceDatabases and Tenants: watched by their controllers, finalizer added/removed.
- apiGroups: ["servicedb.io"]
  resources: ["servicedatabases", "tenants"]
  verbs: ["get", "list", "watch", "patch", "update"]
# Their status (conditions, schema version, rollout, tenant databases).
- apiGroups: ["servicedb.io"]
  resources: ["servicedatabases/status", "tenants/status"]
  verbs: ["get", "patch", "update"]
# Connection Secrets it writes next to each service (server-side apply: create, patch),
# owns and watches (get, list, watch), rotates (update) and removes with the resource
# (delete); also the DatabaseServers' admin Secrets, read in the operator's namespace.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Migration ConfigMaps: read and watched, mounted into the Jobs; never written.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
# Migration Jobs: created per (database, migrations, target), watched for Complete/Failed,
# superseded finished Jobs deleted. Never patched.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# A failed Job's pods, listed by batch.kubernetes.io/job-name to copy the container's
# termination message (file, SQLSTATE, message) into status. Logs are never read.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
# Events (events.k8s.io/v1): created, then patched with a series on repeats.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* Events about cluster-scoped DatabaseServers go to the `default` namespace. */}}
{{- define "servicedb.rules.defaultEvents" -}}
# Events about DatabaseServers (cluster-scoped) are recorded in the default namespace.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* The operator's own namespace under watchNamespace: the admin Secrets. */}}
{{- define "servicedb.rules.operatorNamespace" -}}
# DatabaseServers' admin Secrets (adminSecretRef, caSecretRef) live in the operator's
# namespace: read and watched so a changed password reaches the server's reconcile.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end -}}

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
code uses and nothing more: tests/controller_rbac.rs runs the controller as this chart's
ServiceAccount and fails on any request these rules refuse, and on any rule no request used.
*/}}

{{/* Cluster-scoped objects: always in a ClusterRole. */}}
{{- define "servicedb.rules.cluster" -}}
# DatabaseServers are cluster-scoped: both controllers list and watch them, and read one
# (get) when the cache is older than the operator's own last status write. Never written
# (no finalizer); only their status is.
- apiGroups: ["servicedb.io"]
  resources: ["databaseservers"]
  verbs: ["get", "list", "watch"]
# Their status (serverVersion, databaseCount, conditions): server-side apply of the status
# subresource.
- apiGroups: ["servicedb.io"]
  resources: ["databaseservers/status"]
  verbs: ["patch"]
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
# ServiceDatabases: listed and watched, read (get) when the cache is older than the
# operator's own last status write; the finalizer added and removed (JSON patch).
- apiGroups: ["servicedb.io"]
  resources: ["servicedatabases"]
  verbs: ["get", "list", "watch", "patch"]
# Their status (conditions, database, Secret name): server-side apply of the subresource.
- apiGroups: ["servicedb.io"]
  resources: ["servicedatabases/status"]
  verbs: ["patch"]
# Tenants: listed and watched (by their controller, and by PerTenant ServiceDatabases
# counting their fleet), read (get) when the cache is older than the operator's own last
# status write; the finalizer added and removed (JSON patch).
- apiGroups: ["servicedb.io"]
  resources: ["tenants"]
  verbs: ["get", "list", "watch", "patch"]
# Their status (databases, placement, conditions): patch of the subresource.
- apiGroups: ["servicedb.io"]
  resources: ["tenants/status"]
  verbs: ["patch"]
# Connection Secrets next to each service: written by server-side apply (patch creates
# them), read back (get), owned and watched (list, watch). Removed by the garbage collector
# through their owner reference; deleted by the operator only when a Tenant stops listing a
# service (the Tenant, their owner, stays).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "patch", "delete"]
# Migration ConfigMaps a ServiceDatabase references: watched (metadata only) and read (the
# files whose hash names the Job); never written.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
# Migration Jobs: created, owned and watched; removed by ttlSecondsAfterFinished or the
# garbage collector, never deleted by the operator.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create"]
# A failed Job's Pods: their termination message holds the failing file and error (logs
# are never read).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
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
# DatabaseServers' admin and CA Secrets must live in the operator's namespace (servicedb
# refuses a reference to any other): read (get), and watched (list, watch) so a changed
# password reaches the server's reconcile at once.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end -}}

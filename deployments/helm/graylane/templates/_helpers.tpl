{{/* Names and labels. */}}
{{- define "graylane.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "graylane.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "graylane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "graylane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "graylane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "graylane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "graylane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "graylane.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* external: whether graylane uses an external etcd. */}}
{{- define "graylane.externalEtcd" -}}
{{- if .Values.etcd.endpoints -}}true{{- end -}}
{{- end -}}

{{/* ha: replicas >= 2 (leader election, PodDisruptionBudget). */}}
{{- define "graylane.ha" -}}
{{- if gt (int .Values.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{- define "graylane.authSecret" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else if .Values.auth.token -}}
{{- printf "%s-auth" (include "graylane.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
validate stops rendering with a message naming the value at fault.
*/}}
{{- define "graylane.validate" -}}
{{- if and (include "graylane.ha" .) (not (include "graylane.externalEtcd" .)) -}}
{{- fail (printf "replicas: %d replicas need an external etcd (etcd.endpoints); the embedded etcd is a single replica on one volume" (int .Values.replicas)) -}}
{{- end -}}
{{- if and .Values.etcd.tls.existingSecret (not (include "graylane.externalEtcd" .)) -}}
{{- fail "etcd.tls.existingSecret: set only with etcd.endpoints (the embedded etcd listens on loopback without TLS)" -}}
{{- end -}}
{{- if and .Values.rbac.namespaced (not .Values.rbac.namespaces) -}}
{{- fail "rbac.namespaces: list the namespaces graylane may run apps in when rbac.namespaced is true" -}}
{{- end -}}
{{- if and (eq .Values.source.type "nacos") (not .Values.nacos.servers) -}}
{{- fail "nacos.servers: required when source.type is nacos" -}}
{{- end -}}
{{- if and (eq .Values.source.type "apollo") (not (or .Values.apollo.meta .Values.apollo.configService)) -}}
{{- fail "apollo.meta: required (or apollo.configService) when source.type is apollo" -}}
{{- end -}}
{{- if and .Values.auth.token (lt (len .Values.auth.token) 8) -}}
{{- fail "auth.token: at least 8 characters" -}}
{{- end -}}
{{- end -}}

{{/*
config is graylane.yaml: what the values say, with .Values.config merged
over it. Secrets never land here: they come in as GRAYLANE_* variables.
*/}}
{{- define "graylane.config" -}}
{{- $c := dict
  "http" (dict "addr" (printf "0.0.0.0:%d" (int .Values.service.port)))
  "data" (dict "dir" "/data")
  "log" (dict "level" .Values.log.level "format" .Values.log.format)
  "source" (dict "type" .Values.source.type)
  "kubernetes" (dict "kubeconfig" "" "namespaces" (ternary .Values.rbac.namespaces (list) .Values.rbac.namespaced))
-}}
{{- $etcd := dict "prefix" .Values.etcd.prefix "dialTimeout" .Values.etcd.dialTimeout "endpoints" .Values.etcd.endpoints -}}
{{- if .Values.etcd.tls.existingSecret -}}
{{- $_ := set $etcd "tls" (dict "certFile" "/etc/graylane/etcd-tls/tls.crt" "keyFile" "/etc/graylane/etcd-tls/tls.key" "caFile" "/etc/graylane/etcd-tls/ca.crt" "serverName" .Values.etcd.tls.serverName) -}}
{{- end -}}
{{- $_ := set $c "etcd" $etcd -}}
{{- if include "graylane.ha" . -}}
{{- $_ := set $c "ha" (dict "enabled" true "ttl" .Values.ha.ttl) -}}
{{- end -}}
{{- if eq .Values.source.type "nacos" -}}
{{- $nacos := dict "servers" .Values.nacos.servers "namespace" .Values.nacos.namespace "group" .Values.nacos.group "indexDataId" .Values.nacos.indexDataId -}}
{{- if or .Values.nacos.tls.enabled .Values.nacos.tls.existingSecret -}}
{{- $tls := dict "enabled" true -}}
{{- if .Values.nacos.tls.existingSecret -}}{{- $_ := set $tls "caFile" "/etc/graylane/nacos-tls/ca.crt" -}}{{- end -}}
{{- $_ := set $nacos "tls" $tls -}}
{{- end -}}
{{- $_ := set $c "nacos" $nacos -}}
{{- end -}}
{{- if eq .Values.source.type "apollo" -}}
{{- $apollo := dict "meta" .Values.apollo.meta "configService" .Values.apollo.configService "appId" .Values.apollo.appId "cluster" .Values.apollo.cluster "namespace" .Values.apollo.namespace "portal" .Values.apollo.portal "env" .Values.apollo.env "operator" .Values.apollo.operator -}}
{{- if .Values.apollo.tls.existingSecret -}}
{{- $_ := set $apollo "tls" (dict "caFile" "/etc/graylane/apollo-tls/ca.crt") -}}
{{- end -}}
{{- $_ := set $c "apollo" $apollo -}}
{{- end -}}
{{- toYaml (mergeOverwrite $c .Values.config) -}}
{{- end -}}

{{/* tlsMounts lists the TLS Secrets to mount (JSON): name, secret, path. */}}
{{- define "graylane.tlsMounts" -}}
{{- $m := list -}}
{{- if .Values.etcd.tls.existingSecret -}}{{- $m = append $m (dict "name" "etcd-tls" "secret" .Values.etcd.tls.existingSecret "path" "/etc/graylane/etcd-tls") -}}{{- end -}}
{{- if and (eq .Values.source.type "nacos") .Values.nacos.tls.existingSecret -}}{{- $m = append $m (dict "name" "nacos-tls" "secret" .Values.nacos.tls.existingSecret "path" "/etc/graylane/nacos-tls") -}}{{- end -}}
{{- if and (eq .Values.source.type "apollo") .Values.apollo.tls.existingSecret -}}{{- $m = append $m (dict "name" "apollo-tls" "secret" .Values.apollo.tls.existingSecret "path" "/etc/graylane/apollo-tls") -}}{{- end -}}
{{- toJson $m -}}
{{- end -}}

{{/* secretEnv renders one env var from an optional Secret key. */}}
{{- define "graylane.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
      optional: true
{{- end -}}

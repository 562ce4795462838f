{{/*
The chart name: .Chart.Name or nameOverride, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "triton-deploy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name prefix of every resource: fullnameOverride, or "<release>-<chart>" (just the release
name when it already contains the chart name). Truncated to 55 characters so that the longest
suffix the chart appends ("-preview", 8 characters) still fits in the 63-character limit.
*/}}
{{- define "triton-deploy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the preview Service: "<fullname>-preview" (at most 63 characters).
*/}}
{{- define "triton-deploy.previewName" -}}
{{- printf "%s-preview" (include "triton-deploy.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "triton-deploy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels of every object. No version label here: the color objects carry their own
(<color>.version), the shared objects the chart's appVersion.
*/}}
{{- define "triton-deploy.labels" -}}
helm.sh/chart: {{ include "triton-deploy.chart" . }}
{{ include "triton-deploy.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "triton-deploy.name" . }}
{{- end }}

{{/*
Selector labels shared by both colors; a color adds "color: blue|green".
*/}}
{{- define "triton-deploy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "triton-deploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount the pods run as.
*/}}
{{- define "triton-deploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "triton-deploy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The color that is not active.
*/}}
{{- define "triton-deploy.previewColor" -}}
{{- ternary "green" "blue" (eq .Values.activeColor "blue") }}
{{- end }}

{{/*
Full image reference of a color: (dict "root" $ "color" "blue").
*/}}
{{- define "triton-deploy.image" -}}
{{- $c := index .root.Values .color }}
{{- printf "%s:%s%s" .root.Values.image.repository (default .root.Values.image.tag $c.imageTag) .root.Values.image.tagSuffix }}
{{- end }}

{{/*
Termination grace period: shutdown.terminationGracePeriodSeconds, or derived from the preStop
sleep and Triton's exit timeout. A grace period that would kill in-flight requests fails.
*/}}
{{- define "triton-deploy.terminationGracePeriodSeconds" -}}
{{- $needed := add .Values.shutdown.preStopSleepSeconds .Values.triton.exitTimeoutSecs }}
{{- $grace := .Values.shutdown.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $grace }}
{{- add $needed 15 }}
{{- else if le (int $grace) (int $needed) }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%v) must be greater than shutdown.preStopSleepSeconds + triton.exitTimeoutSecs (%v), or in-flight requests are killed; leave it null to derive it" $grace $needed) }}
{{- else }}
{{- $grace }}
{{- end }}
{{- end }}

{{/*
Checks of one color's values that the schema cannot express: (dict "root" $ "color" "blue").
Renders nothing; fails with a message naming the value at fault.
*/}}
{{- define "triton-deploy.validateColor" -}}
{{- $root := .root }}
{{- $name := .color }}
{{- $c := index $root.Values $name }}
{{- $repo := $c.modelRepository }}
{{- if has $repo.source (list "objectStorage" "sync") }}
{{- if not (regexMatch "^(s3|gs|as)://.+" $repo.uri) }}
{{- fail (printf "%s.modelRepository.uri is required for source %q: s3://bucket/path, gs://bucket/path or as://account/container/path (got %q)" $name $repo.source $repo.uri) }}
{{- end }}
{{- end }}
{{- if and (eq $repo.source "pvc") (not $repo.pvc.claimName) }}
{{- fail (printf "%s.modelRepository.pvc.claimName is required for source \"pvc\"" $name) }}
{{- end }}
{{- if and (eq $repo.source "sync") (not $root.Values.modelSync.command) (not (regexMatch "^(s3|gs)://" $repo.uri)) }}
{{- fail (printf "%s.modelRepository.uri %q: no default sync command for this scheme; set modelSync.command" $name $repo.uri) }}
{{- end }}
{{- if $root.Values.tensorrtOnNode.enabled }}
{{- if eq $repo.source "objectStorage" }}
{{- fail (printf "tensorrtOnNode.enabled needs a writable local model repository, but %s.modelRepository.source is \"objectStorage\" (read in place by Triton): use source \"sync\" (object storage copied into an emptyDir) or \"pvc\" with readOnly: false" $name) }}
{{- end }}
{{- if and (eq $repo.source "pvc") $repo.pvc.readOnly }}
{{- fail (printf "tensorrtOnNode.enabled writes plans into the model repository, but %s.modelRepository.pvc.readOnly is true: set it to false or use source \"sync\"" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Checks of the shared values that the schema cannot express. Renders nothing.
*/}}
{{- define "triton-deploy.validate" -}}
{{- if not (or .Values.blue.enabled .Values.green.enabled) }}
{{- fail "blue.enabled and green.enabled are both false: enable at least one color" }}
{{- end }}
{{- if and .Values.tensorrtOnNode.enabled (not .Values.gpu.enabled) }}
{{- fail "tensorrtOnNode.enabled needs a GPU (trtexec and nvidia-smi): set gpu.enabled=true or tensorrtOnNode.enabled=false" }}
{{- end }}
{{- if and .Values.tensorrtOnNode.enabled (eq .Values.tensorrtOnNode.cache.type "pvc") (not .Values.tensorrtOnNode.cache.claimName) }}
{{- fail "tensorrtOnNode.cache.claimName is required when tensorrtOnNode.cache.type is \"pvc\"" }}
{{- end }}
{{- $rp := .Values.triton.restrictedProtocols }}
{{- if $rp.enabled }}
{{- if not $rp.existingSecret }}
{{- fail "triton.restrictedProtocols.existingSecret is required: create it with `kubectl create secret generic triton-admin-key --from-literal=key=$(openssl rand -hex 32)` and set the name, or set triton.restrictedProtocols.enabled=false" }}
{{- end }}
{{- if has "health" $rp.protocols }}
{{- fail "triton.restrictedProtocols.protocols must not contain \"health\": the kubelet probes call /v2/health without the admin header" }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not (or .Values.autoscaling.queueTime.enabled .Values.autoscaling.cpu.enabled)) }}
{{- fail "autoscaling.enabled needs a metric: autoscaling.queueTime.enabled or autoscaling.cpu.enabled" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.triton.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs triton.metrics.enabled (--allow-metrics)" }}
{{- end }}
{{- range $color := list "blue" "green" }}
{{- if (index $.Values $color).enabled }}
{{- include "triton-deploy.validateColor" (dict "root" $ "color" $color) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
tritonserver arguments, one per list item. Independent of activeColor. (dict "root" $ "color" "blue")
*/}}
{{- define "triton-deploy.tritonArgs" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $t := $v.triton }}
{{- $c := index $v .color }}
{{- $repoPath := ternary $c.modelRepository.uri "/models" (eq $c.modelRepository.source "objectStorage") }}
- --model-repository={{ $repoPath }}
- --model-control-mode={{ $t.modelControlMode }}
{{- if eq $t.modelControlMode "poll" }}
- --repository-poll-secs={{ $t.repositoryPollSecs }}
{{- end }}
{{- if eq $t.modelControlMode "explicit" }}
{{- range $t.loadModels }}
- --load-model={{ . }}
{{- end }}
{{- end }}
- --strict-readiness={{ $t.strictReadiness }}
- --exit-timeout-secs={{ $t.exitTimeoutSecs }}
- --http-port={{ $v.ports.http }}
- --grpc-port={{ $v.ports.grpc }}
- --metrics-port={{ $v.ports.metrics }}
{{- if gt (int $t.grpc.maxConnectionAgeMs) 0 }}
- --grpc-max-connection-age={{ int $t.grpc.maxConnectionAgeMs }}
- --grpc-max-connection-age-grace={{ int $t.grpc.maxConnectionAgeGraceMs }}
{{- end }}
{{- with $t.grpc.keepalive }}
{{- if not (kindIs "invalid" .timeMs) }}
- --grpc-keepalive-time={{ int .timeMs }}
{{- end }}
{{- if not (kindIs "invalid" .timeoutMs) }}
- --grpc-keepalive-timeout={{ int .timeoutMs }}
{{- end }}
{{- if not (kindIs "invalid" .permitWithoutCalls) }}
- --grpc-keepalive-permit-without-calls={{ .permitWithoutCalls }}
{{- end }}
{{- if not (kindIs "invalid" .http2MaxPingsWithoutData) }}
- --grpc-http2-max-pings-without-data={{ int .http2MaxPingsWithoutData }}
{{- end }}
{{- if not (kindIs "invalid" .http2MinRecvPingIntervalWithoutDataMs) }}
- --grpc-http2-min-recv-ping-interval-without-data={{ int .http2MinRecvPingIntervalWithoutDataMs }}
{{- end }}
{{- if not (kindIs "invalid" .http2MaxPingStrikes) }}
- --grpc-http2-max-ping-strikes={{ int .http2MaxPingStrikes }}
{{- end }}
{{- end }}
- --log-format={{ $t.log.format }}
- --log-verbose={{ $t.log.verbose }}
- --allow-metrics={{ $t.metrics.enabled }}
{{- if $t.metrics.enabled }}
- --allow-gpu-metrics={{ and $t.metrics.gpu $v.gpu.enabled }}
- --allow-cpu-metrics={{ $t.metrics.cpu }}
- --metrics-interval-ms={{ $t.metrics.intervalMs }}
{{- end }}
{{- include "triton-deploy.metricsConfigArgs" . }}
{{- include "triton-deploy.traceArgs" . }}
{{- with $t.restrictedProtocols }}
{{- if .enabled }}
{{- /* $(RESTRICTED_KEY_VALUE) is expanded by the kubelet from the env var of the same name (secretKeyRef). */}}
- --grpc-restricted-protocol={{ join "," .protocols }}:{{ .headerKey }}=$(RESTRICTED_KEY_VALUE)
- --http-restricted-api={{ join "," .protocols }}:{{ .headerKey }}=$(RESTRICTED_KEY_VALUE)
{{- end }}
{{- end }}
{{- range $t.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
envFrom entries with a color's object-storage credentials (existing Secret only).
(dict "root" $ "color" "blue")
*/}}
{{- define "triton-deploy.storageEnvFrom" -}}
{{- $cr := (index .root.Values .color).modelRepository.credentials }}
{{- if $cr.existingSecret }}
- secretRef:
    name: {{ $cr.existingSecret }}
{{- end }}
{{- end }}

{{/*
env entries with a color's object-storage credentials: secretKeyRef entries and the GCS key
file path. (dict "root" $ "color" "blue")
*/}}
{{- define "triton-deploy.storageEnv" -}}
{{- $cr := (index .root.Values .color).modelRepository.credentials }}
{{- with $cr.env }}
{{ toYaml . }}
{{- end }}
{{- if $cr.gcsKeySecret.name }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: /var/run/secrets/gcs/{{ $cr.gcsKeySecret.key }}
{{- end }}
{{- end }}

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
Deep-merges the map .over into the map .base in place: maps merge key by key; anything else in
.over (a scalar, a list) replaces the value in .base; a null in .over leaves .base's value.
Renders nothing: call it as `$_ := include ...`.
*/}}
{{- define "triton-deploy.mergeInto" -}}
{{- $base := .base }}
{{- range $key, $value := .over }}
{{- if kindIs "invalid" $value }}
{{- else if and (kindIs "map" $value) (kindIs "map" (get $base $key)) }}
{{- $_ := include "triton-deploy.mergeInto" (dict "base" (get $base $key) "over" $value) }}
{{- else }}
{{- $_ := set $base $key (deepCopy $value) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Merges the list .over into the list .values.<key> in place, item by item on the field .by, as a
Kubernetes strategic merge patch does (env and volumes by name, volumeMounts by mountPath): an
item of .over replaces the item with the same .by value, the others are appended in order.
Renders nothing.
*/}}
{{- define "triton-deploy.mergeListInto" -}}
{{- $by := .by }}
{{- $over := .over }}
{{- $overKeys := list }}
{{- range $over }}{{ $overKeys = append $overKeys (get . $by) }}{{ end }}
{{- $merged := list }}
{{- $baseKeys := list }}
{{- range $item := (get .values .key | default list) }}
{{- $k := get $item $by }}
{{- $baseKeys = append $baseKeys $k }}
{{- if has $k $overKeys }}
{{- range $over }}{{ if eq (get . $by) $k }}{{ $merged = append $merged (deepCopy .) }}{{ end }}{{ end }}
{{- else }}
{{- $merged = append $merged $item }}
{{- end }}
{{- end }}
{{- range $over }}{{ if not (has (get . $by) $baseKeys) }}{{ $merged = append $merged (deepCopy .) }}{{ end }}{{ end }}
{{- $_ := set .values .key $merged }}
{{- end }}

{{/*
Per-color overrides: every pod-affecting shared value can be set under <color>.<key> and only
reaches that color's objects. How each key combines with the shared value:
  - maps, deep-merged key by key (lists inside them replace);
  - lists of objects merged item by item on a field (like `kubectl patch`), "key:field";
  - values that replace the shared one when set (null = inherit).
Not here: `ports` (the Services route both colors on the same ports), `serviceAccount` (one
shared object), `podAnnotations` (<color>.podAnnotations merges already) and the image tag and
digest (<color>.imageTag, <color>.imageDigest).
*/}}
{{- define "triton-deploy.overridableMaps" -}}
image triton resources shm probes shutdown gpu modelSync tensorrtOnNode nodeSelector affinity antiAffinity podLabels podSecurityContext securityContext
{{- end }}
{{- define "triton-deploy.overridableMergedLists" -}}
extraEnv:name extraVolumes:name extraVolumeMounts:mountPath imagePullSecrets:name topologySpreadConstraints:topologyKey
{{- end }}
{{- define "triton-deploy.overridableReplaced" -}}
tolerations runtimeClassName priorityClassName tmpSizeLimit extraWritableDirs strategy
{{- end }}

{{/*
Applies a color's overrides to .values in place, a deep copy of .Values made by the caller:
    {{- $v := deepCopy $.Values }}
    {{- $_ := include "triton-deploy.applyColorOverrides" (dict "values" $v "color" "blue") }}
Templates then read every pod setting of that color from $v, never from .Values, so that a value
set for one color cannot reach the other color's pod template.
*/}}
{{- define "triton-deploy.applyColorOverrides" -}}
{{- $v := .values }}
{{- $c := index $v .color }}
{{- range $key := include "triton-deploy.overridableMaps" . | splitList " " }}
{{- $over := get $c $key }}
{{- if kindIs "map" $over }}
{{- if not (kindIs "map" (get $v $key)) }}
{{- $_ := set $v $key (dict) }}
{{- end }}
{{- $_ := include "triton-deploy.mergeInto" (dict "base" (get $v $key) "over" $over) }}
{{- end }}
{{- end }}
{{- range $spec := include "triton-deploy.overridableMergedLists" . | splitList " " }}
{{- $key := first (splitList ":" $spec) }}
{{- $over := get $c $key }}
{{- if kindIs "slice" $over }}
{{- $_ := include "triton-deploy.mergeListInto" (dict "values" $v "key" $key "over" $over "by" (last (splitList ":" $spec))) }}
{{- end }}
{{- end }}
{{- range $key := include "triton-deploy.overridableReplaced" . | splitList " " }}
{{- if and (hasKey $c $key) (not (kindIs "invalid" (index $c $key))) }}
{{- $_ := set $v $key (deepCopy (index $c $key)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Full image reference of a color: (dict "values" $v "color" "blue"), $v with the color's overrides.
"<repository>:<tag><suffix>", plus "@<digest>" when pinned (the kubelet then pulls by digest).
*/}}
{{- define "triton-deploy.image" -}}
{{- $v := .values }}
{{- $c := index $v .color }}
{{- $ref := printf "%s:%s%s" $v.image.repository (default $v.image.tag $c.imageTag) $v.image.tagSuffix }}
{{- with include "triton-deploy.imageDigest" . }}
{{- printf "%s@%s" $ref . }}
{{- else }}
{{- $ref }}
{{- end }}
{{- end }}

{{/*
Digest of a color's Triton image: <color>.imageDigest, else image.digest when the color keeps the
shared tag (a shared digest pins the shared tag only). Empty = pinned by tag.
*/}}
{{- define "triton-deploy.imageDigest" -}}
{{- $c := index .values .color }}
{{- if $c.imageDigest }}
{{- $c.imageDigest }}
{{- else if not $c.imageTag }}
{{- .values.image.digest }}
{{- end }}
{{- end }}

{{/*
"<repository>:<tag>[@<digest>]" of an image block with repository, tag and digest.
*/}}
{{- define "triton-deploy.imageRef" -}}
{{- printf "%s:%s" .repository .tag }}{{ with .digest }}@{{ . }}{{ end }}
{{- end }}

{{/*
Seconds until every gRPC client connected to a pod has moved away from it, once the pod no
longer receives new connections: Triton's --grpc-max-connection-age plus 10 % (gRPC adds up to
±10 % jitter to the age) plus --grpc-max-connection-age-grace, rounded up. 0 when no max age is
set (clients then stay until the pod stops). Takes the color's values.
*/}}
{{- define "triton-deploy.connectionDrainSeconds" -}}
{{- $g := .triton.grpc }}
{{- if gt (int $g.maxConnectionAgeMs) 0 }}
{{- div (add (div (mul (int $g.maxConnectionAgeMs) 11) 10) (int $g.maxConnectionAgeGraceMs) 999) 1000 }}
{{- else }}
{{- 0 }}
{{- end }}
{{- end }}

{{/*
preStop sleep of a color's pods: shutdown.preStopSleepSeconds, or derived so that Triton gets
SIGTERM only once the endpoints have dropped the pod (shutdown.endpointPropagationSeconds) and
every client connection has aged out and moved (connectionDrainSeconds). Then nothing is in
flight when Triton stops, whatever Triton does with in-flight ensemble requests on SIGTERM.
(dict "values" $v "color" "blue")
*/}}
{{- define "triton-deploy.preStopSleepSeconds" -}}
{{- $v := .values }}
{{- $drain := include "triton-deploy.connectionDrainSeconds" $v | int }}
{{- if $v.overload.enabled }}
{{- /* the shedder stops accepting after endpointPropagationSeconds; what it still holds then
(queued, in flight) is done within its drain time: Triton stops after that */}}
{{- $drain = max $drain (include "triton-deploy.shedderDrainSeconds" $v | int) | int }}
{{- end }}
{{- $needed := add $drain $v.shutdown.endpointPropagationSeconds }}
{{- $sleep := $v.shutdown.preStopSleepSeconds }}
{{- if kindIs "invalid" $sleep }}
{{- $needed }}
{{- else if lt (int $sleep) (int $needed) }}
{{- fail (printf "%s: shutdown.preStopSleepSeconds (%v) must be at least %d: a stopping pod keeps receiving requests on the gRPC connections clients already hold until Triton closes them (max connection age %v ms + 10 %% jitter + grace %v ms = %d s), after shutdown.endpointPropagationSeconds (%v). Leave it null to derive it, or lower triton.grpc.maxConnectionAgeMs" .color $sleep $needed $v.triton.grpc.maxConnectionAgeMs $v.triton.grpc.maxConnectionAgeGraceMs $drain $v.shutdown.endpointPropagationSeconds) }}
{{- else }}
{{- $sleep }}
{{- end }}
{{- end }}

{{/*
Termination grace period of a color's pods: shutdown.terminationGracePeriodSeconds, or derived
from the preStop sleep and Triton's exit timeout. A grace period that would kill in-flight
requests fails. (dict "values" $v "color" "blue")
*/}}
{{- define "triton-deploy.terminationGracePeriodSeconds" -}}
{{- $v := .values }}
{{- $needed := add (include "triton-deploy.preStopSleepSeconds" . | int) $v.triton.exitTimeoutSecs }}
{{- $grace := $v.shutdown.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $grace }}
{{- add $needed 15 }}
{{- else if le (int $grace) (int $needed) }}
{{- fail (printf "%s: shutdown.terminationGracePeriodSeconds (%v) must be greater than the preStop sleep + triton.exitTimeoutSecs (%v), or in-flight requests are killed; leave it null to derive it" .color $grace $needed) }}
{{- else }}
{{- $grace }}
{{- end }}
{{- end }}

{{/*
Whether a color runs pods: enabled with replicas > 0 (with the HPA on, replicas is its minimum).
Renders "true" or "". (dict "root" $ "color" "blue")
*/}}
{{- define "triton-deploy.hasPods" -}}
{{- $c := index .root.Values .color }}
{{- if and $c.enabled (gt (int $c.replicas) 0) }}true{{ end }}
{{- end }}

{{/*
Checks of one color's values that the schema cannot express, on the color's effective values:
(dict "values" $v "color" "blue"). Renders nothing; fails with a message naming the value at fault.
*/}}
{{- define "triton-deploy.validateColor" -}}
{{- $v := .values }}
{{- $name := .color }}
{{- $c := index $v $name }}
{{- $repo := $c.modelRepository }}
{{- $rp := $v.triton.restrictedProtocols }}
{{- if $rp.enabled }}
{{- if not $rp.existingSecret }}
{{- fail (printf "triton.restrictedProtocols.existingSecret is required (%s): create it with `kubectl create secret generic triton-admin-key --from-literal=key=$(openssl rand -hex 32)` and set the name, or set triton.restrictedProtocols.enabled=false" $name) }}
{{- end }}
{{- if has "health" $rp.protocols }}
{{- fail (printf "triton.restrictedProtocols.protocols must not contain \"health\" (%s): the kubelet probes and `helm test` call Triton's health API without the admin header" $name) }}
{{- end }}
{{- end }}
{{- if has $repo.source (list "objectStorage" "sync") }}
{{- if not (regexMatch "^(s3|gs|as)://.+" $repo.uri) }}
{{- fail (printf "%s.modelRepository.uri is required for source %q: s3://bucket/path, gs://bucket/path or as://account/container/path (got %q)" $name $repo.source $repo.uri) }}
{{- end }}
{{- end }}
{{- if and (eq $repo.source "pvc") (not $repo.pvc.claimName) }}
{{- fail (printf "%s.modelRepository.pvc.claimName is required for source \"pvc\"" $name) }}
{{- end }}
{{- if and (eq $repo.source "sync") (not $v.modelSync.command) (not (regexMatch "^(s3|gs)://" $repo.uri)) }}
{{- fail (printf "%s.modelRepository.uri %q: no default sync command for this scheme; set modelSync.command" $name $repo.uri) }}
{{- end }}
{{- if $v.tensorrtOnNode.enabled }}
{{- if not $v.gpu.enabled }}
{{- fail (printf "tensorrtOnNode.enabled needs a GPU (trtexec and nvidia-smi), but gpu.enabled is false for %s: set gpu.enabled=true or tensorrtOnNode.enabled=false" $name) }}
{{- end }}
{{- if and (eq $v.tensorrtOnNode.cache.type "pvc") (not $v.tensorrtOnNode.cache.claimName) }}
{{- fail (printf "tensorrtOnNode.cache.claimName is required when tensorrtOnNode.cache.type is \"pvc\" (%s)" $name) }}
{{- end }}
{{- if eq $repo.source "objectStorage" }}
{{- fail (printf "tensorrtOnNode.enabled needs a writable local model repository, but %s.modelRepository.source is \"objectStorage\" (read in place by Triton): use source \"sync\" (object storage copied into an emptyDir) or \"pvc\" with readOnly: false" $name) }}
{{- end }}
{{- if and (eq $repo.source "pvc") $repo.pvc.readOnly }}
{{- fail (printf "tensorrtOnNode.enabled writes plans into the model repository, but %s.modelRepository.pvc.readOnly is true: set it to false or use source \"sync\"" $name) }}
{{- end }}
{{- end }}
{{- if and (eq $v.triton.http.mode "health") (not $rp.enabled) }}
{{- fail (printf "triton.http.mode \"health\" (%s) keeps every HTTP API but health behind the admin header, which needs triton.restrictedProtocols.enabled and its existingSecret; use mode \"none\" (no HTTP listener) otherwise" $name) }}
{{- end }}
{{- if and $c.imageTag (not $c.imageDigest) $v.image.digest }}
{{- fail (printf "%s.imageTag (%q) replaces image.tag, but image.digest pins the shared tag's image: set %s.imageDigest to the digest of %s:%s%s too, or clear image.digest" $name $c.imageTag $name $v.image.repository $c.imageTag $v.image.tagSuffix) }}
{{- end }}
{{- if and (eq $repo.source "objectStorage") (or $repo.manifestDigest $v.signing.publicKey $v.signing.certificateChain) }}
{{- fail (printf "%s.modelRepository.manifestDigest and signing.* are checked on a local copy of the repository before Triton starts, but %s.modelRepository.source is \"objectStorage\" (Triton reads the bucket itself, after any check): use source \"sync\" (copied into an emptyDir, then verified) or \"pvc\"" $name $name) }}
{{- end }}
{{- if and (or $repo.manifestDigest $v.signing.publicKey $v.signing.certificateChain) (not $v.repositoryCheck.enabled) }}
{{- fail (printf "%s.modelRepository.manifestDigest or signing.* is set, but repositoryCheck.enabled is false: nothing would check them" $name) }}
{{- end }}
{{- $_ := include "triton-deploy.terminationGracePeriodSeconds" (dict "values" $v "color" $name) }}
{{- end }}

{{/*
Checks of the shared values that the schema cannot express, then of each enabled color.
Renders nothing.
*/}}
{{- define "triton-deploy.validate" -}}
{{- if not (or .Values.blue.enabled .Values.green.enabled) }}
{{- fail "blue.enabled and green.enabled are both false: enable at least one color" }}
{{- end }}
{{- $active := .Values.activeColor }}
{{- $ac := index .Values $active }}
{{- $idle := include "triton-deploy.previewColor" . }}
{{- if not $ac.enabled }}
{{- fail (printf "activeColor is %q but %s.enabled is false: the main Service would select no pods and every client would fail. Deploy %s first (%s.enabled=true, replicas > 0, wait until it is ready), or keep activeColor=%s" $active $active $active $active $idle) }}
{{- end }}
{{- if eq (int $ac.replicas) 0 }}
{{- fail (printf "activeColor is %q but %s.replicas is 0: the main Service would select no pods and every client would fail. Scale %s up and wait until it is ready before switching to it, or keep activeColor=%s" $active $active $active $idle) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not (or .Values.autoscaling.queueTime.enabled .Values.autoscaling.cpu.enabled)) }}
{{- fail "autoscaling.enabled needs a metric: autoscaling.queueTime.enabled or autoscaling.cpu.enabled" }}
{{- end }}
{{- range $color := list "blue" "green" }}
{{- if (index $.Values $color).enabled }}
{{- $v := deepCopy $.Values }}
{{- $_ := include "triton-deploy.applyColorOverrides" (dict "values" $v "color" $color) }}
{{- $_ := include "triton-deploy.validateColor" (dict "values" $v "color" $color) }}
{{- if and $.Values.metrics.serviceMonitor.enabled (not $v.triton.metrics.enabled) }}
{{- fail (printf "metrics.serviceMonitor.enabled needs triton.metrics.enabled (--allow-metrics), which is false for %s" $color) }}
{{- end }}
{{- end }}
{{- end }}
{{- include "triton-deploy.validatePodDisruptionBudget" . }}
{{- end }}

{{/*
A PodDisruptionBudget must keep serving capacity without blocking node drains forever: a color
with replicas >= 2 gets one (see poddisruptionbudget.yaml), and its budget must both protect
at least one pod and leave at least one evictable.
*/}}
{{- define "triton-deploy.validatePodDisruptionBudget" -}}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if $pdb.enabled }}
{{- $min := $pdb.minAvailable }}
{{- $max := $pdb.maxUnavailable }}
{{- if eq (toString $min) "100%" }}
{{- fail "podDisruptionBudget.minAvailable 100% would block every node drain: use a lower percentage, or maxUnavailable" }}
{{- end }}
{{- if eq (toString $max) "0" "0%" }}
{{- fail "podDisruptionBudget.maxUnavailable 0 would block every node drain: use 1 or more" }}
{{- end }}
{{- range $color := list "blue" "green" }}
{{- $c := index $.Values $color }}
{{- $n := int $c.replicas }}
{{- if and $c.enabled (ge $n 2) }}
{{- if and (not (kindIs "invalid" $min)) (not (kindIs "string" $min)) (ge (int $min) $n) }}
{{- fail (printf "podDisruptionBudget.minAvailable (%v) must be below %s.replicas (%d): otherwise no %s pod may ever be evicted and every node drain blocks. Use a lower minAvailable, or maxUnavailable" $min $color $n $color) }}
{{- end }}
{{- if and (kindIs "invalid" $min) (not (kindIs "string" $max)) (ge (int $max) $n) }}
{{- fail (printf "podDisruptionBudget.maxUnavailable (%v) must be below %s.replicas (%d): the budget would let a drain evict every %s pod at once" $max $color $n $color) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Every category of Triton's --http-restricted-api (2.51).
*/}}
{{- define "triton-deploy.httpApiCategories" -}}
health metadata inference shared-memory model-config model-repository statistics trace logging
{{- end }}

{{/*
Whether any enabled color serves HTTP ("true" or ""): the Services and the NetworkPolicy then
expose the http port. Independent of activeColor.
*/}}
{{- define "triton-deploy.anyHttp" -}}
{{- range $color := list "blue" "green" }}
{{- if (index $.Values $color).enabled }}
{{- $v := deepCopy $.Values }}
{{- $_ := include "triton-deploy.applyColorOverrides" (dict "values" $v "color" $color) }}
{{- if ne $v.triton.http.mode "none" }}true{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
tritonserver arguments, one per list item. Independent of activeColor.
(dict "values" $v "color" "blue"), $v with the color's overrides.
*/}}
{{- define "triton-deploy.tritonArgs" -}}
{{- $v := .values }}
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
{{- /* With the load shedder (overload.enabled) Triton listens behind it on its own port. */}}
- --grpc-port={{ ternary $v.overload.tritonGrpcPort $v.ports.grpc $v.overload.enabled | int }}
{{- if eq $t.http.mode "none" }}
{{- /* No HTTP listener at all: no request can reach Triton's JSON parser (see the README). */}}
- --allow-http=false
{{- else }}
- --http-port={{ $v.ports.http }}
{{- end }}
- --metrics-port={{ $v.ports.metrics }}
{{- /* Behind the load shedder the clients' connections end at the shedder, which ages them
(run.sh reloads it every max connection age); Triton's own age would only churn the shedder's
connection to it, cutting calls in flight on it. */}}
{{- if and (gt (int $t.grpc.maxConnectionAgeMs) 0) (not $v.overload.enabled) }}
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
{{- /* $(RESTRICTED_KEY_VALUE) is expanded by the kubelet from the env var of the same name (secretKeyRef). */}}
{{- if .enabled }}
- --grpc-restricted-protocol={{ join "," .protocols }}:{{ .headerKey }}=$(RESTRICTED_KEY_VALUE)
{{- end }}
{{- if eq $t.http.mode "health" }}
- --http-restricted-api={{ without (include "triton-deploy.httpApiCategories" $ | splitList " ") "health" | join "," }}:{{ .headerKey }}=$(RESTRICTED_KEY_VALUE)
{{- else if and .enabled (eq $t.http.mode "full") }}
- --http-restricted-api={{ join "," .protocols }}:{{ .headerKey }}=$(RESTRICTED_KEY_VALUE)
{{- end }}
{{- end }}
{{- range $t.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
envFrom entries with a color's object-storage credentials (existing Secret only).
(dict "values" $v "color" "blue")
*/}}
{{- define "triton-deploy.storageEnvFrom" -}}
{{- $cr := (index .values .color).modelRepository.credentials }}
{{- if $cr.existingSecret }}
- secretRef:
    name: {{ $cr.existingSecret }}
{{- end }}
{{- end }}

{{/*
env entries with a color's object-storage credentials: secretKeyRef entries and the GCS key
file path. (dict "values" $v "color" "blue")
*/}}
{{- define "triton-deploy.storageEnv" -}}
{{- $cr := (index .values .color).modelRepository.credentials }}
{{- with $cr.env }}
{{ toYaml . }}
{{- end }}
{{- if $cr.gcsKeySecret.name }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: /var/run/secrets/gcs/{{ $cr.gcsKeySecret.key }}
{{- end }}
{{- end }}

{{/*
Whether a color's pods run the verify-repository init container: the check is on and the
repository is a local copy (sources sync and pvc). Takes the color's values and name.
*/}}
{{- define "triton-deploy.repositoryCheck" -}}
{{- $repo := (index .values .color).modelRepository }}
{{- if and .values.repositoryCheck.enabled (has $repo.source (list "sync" "pvc")) }}true{{ end }}
{{- end }}

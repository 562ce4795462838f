{{/*
Tracing and metrics settings of the Triton container: --trace-config, --metrics-config, and the
env, volume and mount tracing needs. Every helper takes the pod context of deployment.yaml,
(dict "values" $v "color" "blue" "fullname" "<fullname>"), $v with the color's overrides applied
(so <color>.triton.trace and <color>.triton.metrics are already merged in).
*/}}

{{/*
A color's trace block (empty when the values have none). Rendered as YAML; read it back with
fromYaml.
*/}}
{{- define "triton-deploy.traceValues" -}}
{{- toYaml (default (dict) .values.triton.trace) }}
{{- end }}

{{/*
Checks of a color's trace block that the schema cannot express. Renders nothing.
*/}}
{{- define "triton-deploy.validateTrace" -}}
{{- $tr := .trace }}
{{- if eq $tr.mode "opentelemetry" }}
{{- if has "TENSORS" $tr.level }}
{{- fail (printf "%s: triton.trace.level TENSORS is not supported in mode \"opentelemetry\" (Triton 2.51): use mode \"triton\" to record inputs and outputs" .color) }}
{{- end }}
{{- if not $tr.opentelemetry.url }}
{{- fail (printf "%s: triton.trace.opentelemetry.url is required in mode \"opentelemetry\", e.g. http://otel-collector.monitoring:4318/v1/traces" .color) }}
{{- end }}
{{- end }}
{{- if and (eq $tr.mode "triton") (eq (int64 $tr.rate) 0) }}
{{- fail (printf "%s: triton.trace.rate 0 traces nothing in mode \"triton\": use 1 to trace every request" .color) }}
{{- end }}
{{- end }}

{{/*
--trace-config flags of a color (none when its mode is "off"). Mode triton writes
<directory>/<color>.json.N: the color is in the file name for the inference log reader.
*/}}
{{- define "triton-deploy.traceArgs" -}}
{{- $tr := fromYaml (include "triton-deploy.traceValues" .) }}
{{- $mode := default "off" $tr.mode }}
{{- if ne $mode "off" }}
{{- include "triton-deploy.validateTrace" (dict "trace" $tr "color" .color) }}
- --trace-config=mode={{ $mode }}
{{- range $tr.level }}
- --trace-config=level={{ . }}
{{- end }}
- --trace-config=rate={{ int64 $tr.rate }}
- --trace-config=count={{ int64 $tr.count }}
{{- if eq $mode "triton" }}
- --trace-config=triton,file={{ trimSuffix "/" $tr.file.directory }}/{{ .color }}.json
- --trace-config=triton,log-frequency={{ int64 $tr.file.logFrequency }}
{{- else }}
{{- $otel := $tr.opentelemetry }}
- {{ printf "--trace-config=opentelemetry,url=%s" $otel.url | quote }}
- --trace-config=opentelemetry,resource=service.name={{ default "triton-inference-server" .fullname }}
{{- with (index .values .color).version }}
- {{ printf "--trace-config=opentelemetry,resource=service.version=%s" . | quote }}
{{- end }}
- --trace-config=opentelemetry,resource=color={{ .color }}
{{- range $key, $value := $otel.resource }}
- {{ printf "--trace-config=opentelemetry,resource=%s=%s" $key $value | quote }}
{{- end }}
{{- if not (kindIs "invalid" $otel.scheduleDelayMs) }}
- --trace-config=opentelemetry,bsp_schedule_delay={{ int64 $otel.scheduleDelayMs }}
{{- end }}
{{- if not (kindIs "invalid" $otel.maxQueueSize) }}
- --trace-config=opentelemetry,bsp_max_queue_size={{ int64 $otel.maxQueueSize }}
{{- end }}
{{- if not (kindIs "invalid" $otel.maxExportBatchSize) }}
- --trace-config=opentelemetry,bsp_max_export_batch_size={{ int64 $otel.maxExportBatchSize }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
--metrics-config flags: latency summaries (quantiles per model) for the p99 alert and dashboard.
*/}}
{{- define "triton-deploy.metricsConfigArgs" -}}
{{- $m := .values.triton.metrics }}
{{- if and $m.enabled $m.summaryLatencies }}
- --metrics-config=summary_latencies=true
{{- with $m.summaryQuantiles }}
- --metrics-config=summary_quantiles={{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
env entries tracing needs: the pod's name and namespace (the claim's sub-folder, and the
OpenTelemetry resource attributes).
*/}}
{{- define "triton-deploy.traceEnv" -}}
{{- $tr := fromYaml (include "triton-deploy.traceValues" .) }}
{{- if ne (default "off" $tr.mode) "off" }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- if eq $tr.mode "opentelemetry" }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)
{{- end }}
{{- end }}
{{- end }}

{{/*
volumeMounts entry of the trace folder (mode triton): a claim is shared, so each pod writes
into a sub-folder named after it.
*/}}
{{- define "triton-deploy.traceVolumeMounts" -}}
{{- $tr := fromYaml (include "triton-deploy.traceValues" .) }}
{{- if eq (default "off" $tr.mode) "triton" }}
- name: trace
  mountPath: {{ $tr.file.directory }}
  {{- if $tr.file.existingClaim }}
  subPathExpr: $(POD_NAME)
  {{- end }}
{{- end }}
{{- end }}

{{/*
volumes entry of the trace folder (mode triton): an emptyDir per pod, or an existing claim.
*/}}
{{- define "triton-deploy.traceVolumes" -}}
{{- $tr := fromYaml (include "triton-deploy.traceValues" .) }}
{{- if eq (default "off" $tr.mode) "triton" }}
- name: trace
  {{- if $tr.file.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ $tr.file.existingClaim }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ $tr.file.sizeLimit }}
  {{- end }}
{{- end }}
{{- end }}

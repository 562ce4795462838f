{{/*
Gateway API helpers (gateway.yaml): the weights of the GRPCRoute's two backends, and the checks
of gateway, trafficSplit and shadow that values.schema.json cannot express.
*/}}

{{/*
Name of one color's own Service, the GRPCRoute's backend for that color: "<fullname>-<color>"
(the same name as the color's Deployment; at most 61 characters). (dict "root" $ "color" "blue")
*/}}
{{- define "triton-deploy.colorServiceName" -}}
{{- printf "%s-%s" (include "triton-deploy.fullname" .root) .color }}
{{- end }}

{{/*
The percent of the GRPCRoute's requests each color gets, as JSON {"blue": N, "green": M}:
trafficSplit when it is set (both colors, summing to 100: see validateGateway), else 100 for
activeColor and 0 for the other one, so that a blue/green flip of activeColor moves every
request at once, and `tdeploy rollout --strategy canary` ends on exactly that.
*/}}
{{- define "triton-deploy.trafficWeights" -}}
{{- $split := .Values.trafficSplit | default dict }}
{{- if and (kindIs "invalid" $split.blue) (kindIs "invalid" $split.green) }}
{{- if eq .Values.activeColor "blue" }}{"blue":100,"green":0}{{ else }}{"blue":0,"green":100}{{ end }}
{{- else }}
{{- printf "{\"blue\":%d,\"green\":%d}" (int $split.blue) (int $split.green) }}
{{- end }}
{{- end }}

{{/*
Checks the schema cannot express: JSON schema has no sum, so "trafficSplit adds up to 100" is
checked here (the schema checks each weight's range); a color that gets requests, or mirrored
requests, must run pods; trafficSplit and shadow need the GRPCRoute. Renders nothing.
*/}}
{{- define "triton-deploy.validateGateway" -}}
{{- $split := .Values.trafficSplit | default dict }}
{{- $shadow := .Values.shadow | default dict }}
{{- $blueSet := not (kindIs "invalid" $split.blue) }}
{{- $greenSet := not (kindIs "invalid" $split.green) }}
{{- if or $blueSet $greenSet }}
{{- if not .Values.gateway.enabled }}
{{- fail "trafficSplit weights the GRPCRoute's backends, which exist only with gateway.enabled=true (and gateway.parentRefs): without a Gateway, traffic follows activeColor alone. Unset trafficSplit, or enable the gateway" }}
{{- end }}
{{- if not (and $blueSet $greenSet) }}
{{- fail (printf "trafficSplit.blue and trafficSplit.green go together (got blue=%s, green=%s): set both, summing to 100, or neither (then activeColor gets 100)" (ternary (toString $split.blue) "unset" $blueSet) (ternary (toString $split.green) "unset" $greenSet)) }}
{{- end }}
{{- $sum := add (int $split.blue) (int $split.green) }}
{{- if ne (int $sum) 100 }}
{{- fail (printf "trafficSplit.blue (%d) + trafficSplit.green (%d) = %d, not 100: the weights are percentages of the GRPCRoute's requests" (int $split.blue) (int $split.green) (int $sum)) }}
{{- end }}
{{- end }}
{{- if .Values.gateway.enabled }}
{{- if not .Values.gateway.parentRefs }}
{{- fail "gateway.parentRefs is required with gateway.enabled: the Gateway(s) the GRPCRoute attaches to, e.g. [{name: inference-gateway, namespace: gateway-system, sectionName: grpc}]" }}
{{- end }}
{{- $weights := include "triton-deploy.trafficWeights" . | fromJson }}
{{- range $color := list "blue" "green" }}
{{- $w := index $weights $color | int }}
{{- if and (gt $w 0) (not (include "triton-deploy.hasPods" (dict "root" $ "color" $color))) }}
{{- fail (printf "the GRPCRoute would send %d %% of requests to %s, which runs no pods (%s.enabled=false or %s.replicas=0): deploy %s and wait until it is ready first, or give it weight 0 in trafficSplit" $w $color $color $color $color) }}
{{- end }}
{{- end }}
{{- end }}
{{- if $shadow.enabled }}
{{- if not .Values.gateway.enabled }}
{{- fail "shadow.enabled mirrors the GRPCRoute's requests (its RequestMirror filter), which exists only with gateway.enabled=true: enable the gateway, or mirror from the client (triton_deploy.clients ShadowConfig)" }}
{{- end }}
{{- $idle := include "triton-deploy.previewColor" . }}
{{- if not (include "triton-deploy.hasPods" (dict "root" $ "color" $idle)) }}
{{- fail (printf "shadow.enabled mirrors requests to the idle color %s, which runs no pods (%s.enabled=false or %s.replicas=0): deploy %s first" $idle $idle $idle $idle) }}
{{- end }}
{{- end }}
{{- end }}

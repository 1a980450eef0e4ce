// The three alert rules of README "Monitoring": protection lag above a threshold, a non-empty
// poison queue, and no heartbeat from the TimerProtectionGauges function.
//
// Log search alerts (scheduledQueryRules) over Application Insights' customMetrics table, not
// metric alerts: the app's OpenTelemetry metrics arrive as custom metrics, whose dimensions
// (container, queue) a metric alert sees only after "custom metric dimensions" is switched on
// for the resource (not a template property), and a metric alert cannot fire on data that
// stops arriving. A log query counts rows, so "no heartbeat rows in the window" is an alert.
// The metric names are shared_code/telemetry/instruments.py's (tests/unit/test_infra.py checks).
param applicationInsightsName string
param location string
param tags object

@description('Alert when a container\'s oldest unprotected change is older than this (seconds).')
@minValue(60)
param protectionLagThresholdSeconds int

@description('Alert when no heartbeat arrived for this long (minutes): a few METRICS_SCHEDULE periods; a log alert window.')
@allowed([
  15
  30
  45
  60
])
param heartbeatMissingMinutes int

@description('E-mail address the alerts are sent to (empty: no action group; see the alerts in the portal).')
param alertEmail string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${applicationInsightsName}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'lakebackup'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actions = empty(alertEmail) ? {} : {
  actionGroups: [
    actionGroup.id
  ]
}

resource protectionLagAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'protection-lag-${applicationInsightsName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Backups fall behind: protection lag above threshold'
    description: 'A container\'s oldest change without a snapshot or a backup (metric protection.lag) is older than protectionLagThresholdSeconds.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "protection.lag" | extend container = tostring(customDimensions["container"]) | summarize lag = max(value) by container'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'lag'
          dimensions: [
            {
              name: 'container'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: protectionLagThresholdSeconds
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource poisonQueueAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'poison-queue-${applicationInsightsName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Backup requests poisoned: the poison queue is not empty'
    description: 'queue.length{queue=poison} is above 0: requests failed every try. Fix the cause, then run requeue-poison.'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "queue.length" and tostring(customDimensions["queue"]) == "poison" | summarize poisoned = max(value)'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'poisoned'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource heartbeatAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'heartbeat-${applicationInsightsName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'No heartbeat: the protection gauges stopped'
    description: 'No monitor.heartbeat for heartbeatMissingMinutes: the timer is not running or keeps failing, so no gauge above can be trusted.'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT${heartbeatMissingMinutes}M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "monitor.heartbeat"'
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

output alertRuleNames array = [
  protectionLagAlert.name
  poisonQueueAlert.name
  heartbeatAlert.name
]

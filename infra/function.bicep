// The Function App on Flex Consumption (FC1): Python, the v1 programming model (one folder per
// function with function.json), deployed from a blob container of the host account, running as
// the user-assigned identity. Flex takes the runtime from functionAppConfig.runtime, so the
// settings it ignores (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
// WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENTSHARE, ...) are not set.
param planName string
param appName string
param location string
param tags object

param identityId string
param identityClientId string

param hostAccountName string
param hostBlobEndpoint string
param hostQueueEndpoint string
param deploymentContainerName string
param applicationInsightsConnectionString string

param sourceAccountName string
param backupAccountName string
param queueName string
param backupContainerSuffix string

@allowed([
  'adf'
  'blob'
])
param copyEngine string
param maxCopyMinutes int
param useBlobLease bool
param factoryName string
param copyPipelineName string

@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int
@description('NCRONTAB schedule of TimerProtectionGauges: the host cannot index the timer without the setting.')
param metricsSchedule string
@description('NCRONTAB schedule of TimerRetention: the host cannot index the timer without the setting.')
param retentionSchedule string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  // azd deploys the `api` service of azure.yaml to the resource carrying this tag.
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// The settings every engine needs. The host's AzureWebJobsStorage connection is identity-based
// (user-assigned identity: credential + clientId + service URIs); the queue the app sends to is
// on that same account, which the app's settings check demands (par_storage_account_name_queue).
var baseSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: hostBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: hostQueueEndpoint
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The Python worker configures the Azure Monitor distribution and streams the app's logs itself, so
  // the host (host.json telemetryMode OpenTelemetry) does not send them a second time.
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  METRICS_SCHEDULE: metricsSchedule
  RETENTION_SCHEDULE: retentionSchedule
  par_storage_account_name_source: sourceAccountName
  par_storage_account_name_backup: backupAccountName
  par_storage_account_name_queue: hostAccountName
  par_queue_name: queueName
  BACKUP_CONTAINER_SUFFIX: backupContainerSuffix
  BACKUP_COPY_ENGINE: copyEngine
  MAX_LEASE_COPY_TIME_MINUTES: string(maxCopyMinutes)
  USING_BLOB_LEASE: string(useBlobLease)
}

// The four settings that point the adf engine at the factory's copy pipeline.
var adfSettings = {
  par_subscription_id: subscription().subscriptionId
  par_resource_group_name: resourceGroup().name
  par_adfv2_name: factoryName
  par_adfv2_pipeline_name: copyPipelineName
  ADF_MANAGEMENT_ENDPOINT: environment().resourceManager
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: union(baseSettings, (copyEngine == 'adf') ? adfSettings : {})
}

output name string = functionApp.name
output id string = functionApp.id
output defaultHostName string = functionApp.properties.defaultHostName

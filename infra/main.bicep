// `azd up` entry point: provisions everything the three functions need around an existing data
// lake (the source account is a parameter and is never created) and deploys them (azure.yaml).
// Plain resource declarations in local modules only: nothing is pulled from a registry.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name; resource names are derived from it.')
param environmentName string

@minLength(1)
@description('Region of the new resources (Flex Consumption must be offered there: az functionapp list-flexconsumption-locations).')
param location string

@description('Resource group of the new resources; default rg-<environmentName>.')
param resourceGroupName string = ''

@description('The existing data lake (source) storage account.')
@minLength(3)
@maxLength(24)
param sourceAccountName string

@description('Resource group of the source account.')
param sourceAccountResourceGroup string

@description('adf: each copy is an ADF pipeline run (the original design); blob: Azure Storage\'s server-side copy.')
@allowed([
  'adf'
  'blob'
])
param copyEngine string = 'blob'

@description('Whether the function identity may delete in the backup account (retention of expired backups, removal of a wrong backup).')
param backupDeletes bool = true

@description('Source containers whose backup containers are created now; the immutability policy applies to these.')
param backupSourceContainers array = []

@description('Days of time-based immutability on those backup containers (0 = none; needs copyEngine blob).')
@minValue(0)
@maxValue(146000)
param immutabilityDays int = 0

@description('Replication of the backup account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param backupAccountSku string = 'Standard_GRS'

@description('Blob and container soft delete on the backup account, in days.')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 14

@description('Longest wait for one copy; with the 2-minute margin it must fit host.json functionTimeout (15 min).')
@minValue(1)
@maxValue(13)
param maxCopyMinutes int = 10

param useBlobLease bool = true

@description('The request queue (par_queue_name); keep the original app\'s name when upgrading.')
param queueName string = 'queuesnapshotmetadata'

@description('Backup container = source container + this suffix; keep the original app\'s suffix when upgrading.')
param backupContainerSuffix string = 'bak'

@description('Names of existing resources to adopt when upgrading (empty = a generated name).')
param hostStorageAccountName string = ''
param backupStorageAccountName string = ''
param functionAppName string = ''
param factoryName string = ''

@description('Object ID of the operators\' Entra ID group, who run the admin CLI (status, verify, requeue-poison) and restore; empty = no operator role is granted.')
param operatorPrincipalId string = ''

@description('What operatorPrincipalId is: a group by default (assign people to the group, not roles to people).')
@allowed([
  'Group'
  'User'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'Group'

@description('Whether the operators may restore into the source lake (--in-place, --to-container there): Storage Blob Data Contributor on it instead of Reader.')
param operatorRestoreInPlace bool = false

@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

var token = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var rgName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var appName = empty(functionAppName) ? 'func-${token}' : functionAppName
var hostName = empty(hostStorageAccountName) ? 'sthost${token}' : hostStorageAccountName
var backupName = empty(backupStorageAccountName) ? 'stbak${token}' : backupStorageAccountName
var adfName = empty(factoryName) ? 'adf-${token}' : factoryName
var deploymentContainerName = 'app-package-${take(token, 7)}'
// The worker starts runs of the pipeline this file defines: the name comes from the same file.
var copyPipelineName = loadJsonContent('../adf/pipeline/BlobBackupCopyPipeline.json').name
var backupContainerNames = [for name in backupSourceContainers: '${name}${backupContainerSuffix}']

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: tags
}

module identity 'identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${token}'
    location: location
    tags: tags
  }
}

module monitoring 'monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${token}'
    applicationInsightsName: 'appi-${token}'
    location: location
    tags: tags
  }
}

module storage 'storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    hostAccountName: hostName
    backupAccountName: backupName
    location: location
    tags: tags
    queueName: queueName
    deploymentContainerName: deploymentContainerName
    softDeleteDays: softDeleteDays
    backupAccountSku: backupAccountSku
    backupContainerNames: backupContainerNames
    immutabilityDays: immutabilityDays
    copyEngine: copyEngine
  }
}

module function 'function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    planName: 'plan-${token}'
    appName: appName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostAccountName: storage.outputs.hostAccountName
    hostBlobEndpoint: storage.outputs.hostBlobEndpoint
    hostQueueEndpoint: storage.outputs.hostQueueEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    sourceAccountName: sourceAccountName
    backupAccountName: storage.outputs.backupAccountName
    queueName: storage.outputs.queueName
    backupContainerSuffix: backupContainerSuffix
    copyEngine: copyEngine
    maxCopyMinutes: maxCopyMinutes
    useBlobLease: useBlobLease
    factoryName: adfName
    copyPipelineName: copyPipelineName
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
}

module sourceAccess 'source-rbac.bicep' = {
  name: 'source-access'
  scope: resourceGroup(sourceAccountResourceGroup)
  params: {
    sourceAccountName: sourceAccountName
    functionPrincipalId: identity.outputs.principalId
    factoryPrincipalId: dataFactory.outputs.principalId
    copyEngine: copyEngine
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
    operatorRestoreInPlace: operatorRestoreInPlace
  }
}

module dataFactory 'datafactory.bicep' = {
  name: 'data-factory'
  scope: rg
  params: {
    name: adfName
    location: location
    tags: tags
    sourceBlobEndpoint: 'https://${sourceAccountName}.blob.${environment().suffixes.storage}/'
    backupBlobEndpoint: storage.outputs.backupBlobEndpoint
  }
}

module access 'rbac.bicep' = {
  name: 'access'
  scope: rg
  params: {
    functionPrincipalId: identity.outputs.principalId
    factoryPrincipalId: dataFactory.outputs.principalId
    hostAccountName: storage.outputs.hostAccountName
    deploymentContainerName: storage.outputs.deploymentContainerName
    backupAccountName: storage.outputs.backupAccountName
    factoryName: dataFactory.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    copyEngine: copyEngine
    backupDeletes: backupDeletes
    queueName: storage.outputs.queueName
    recordsContainerName: storage.outputs.recordsContainerName
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module reconciliation 'reconciliation.bicep' = {
  name: 'reconciliation'
  scope: rg
  params: {
    factoryName: dataFactory.outputs.name
    functionAppName: function.outputs.name
    functionLinkedServiceName: 'BackupFunctionApp'
  }
  dependsOn: [
    access
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = function.outputs.name
output BACKUP_STORAGE_ACCOUNT_NAME string = storage.outputs.backupAccountName
output HOST_STORAGE_ACCOUNT_NAME string = storage.outputs.hostAccountName
output DATA_FACTORY_NAME string = dataFactory.outputs.name
output QUEUE_NAME string = storage.outputs.queueName

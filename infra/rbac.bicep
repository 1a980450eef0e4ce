// Role assignments inside the app's resource group, for the Function App's user-assigned
// identity and the factory's system-assigned identity. Every row of README.md's role table
// ("Security") is one resource here or in source-rbac.bicep; tests/unit/test_infra.py compares them.
// Names are guid(scope, principal, role), so a re-deployment updates rather than duplicates.
param functionPrincipalId string
param factoryPrincipalId string
param hostAccountName string
param deploymentContainerName string
param backupAccountName string
param factoryName string
param applicationInsightsName string
@allowed([
  'adf'
  'blob'
])
param copyEngine string
param queueName string
param recordsContainerName string
@description('Object ID of the operators\' group (or user or service principal: operatorPrincipalType); empty = none.')
param operatorPrincipalId string
param operatorPrincipalType string
@description('false: the function identity cannot delete in the backup account (ABAC condition on its role); retention then cannot remove expired backups and the worker cannot remove a wrong backup (the message goes to poison).')
param backupDeletes bool

var roles = loadJsonContent('roles.json')

// Everything Storage Blob Data Contributor allows except deleting blobs, snapshots or versions.
var noDeleteCondition = '((!(ActionMatches{\'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete\'})))'

resource hostAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostAccountName
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  name: '${hostAccountName}/default/${deploymentContainerName}'
}

resource backupAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: backupAccountName
}

resource recordsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  name: '${backupAccountName}/default/${recordsContainerName}'
}

resource requestQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  name: '${hostAccountName}/default/${queueName}'
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  name: '${hostAccountName}/default/${queueName}-poison'
}

resource factory 'Microsoft.DataFactory/factories@2018-06-01' existing = {
  name: factoryName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource functionHostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostAccount.id, functionPrincipalId, roles.StorageBlobDataOwner)
  scope: hostAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataOwner)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionDeploymentContainer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deploymentContainer.id, functionPrincipalId, roles.StorageBlobDataContributor)
  scope: deploymentContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionHostQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostAccount.id, functionPrincipalId, roles.StorageQueueDataContributor)
  scope: hostAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageQueueDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionBackupBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(backupAccount.id, functionPrincipalId, roles.StorageBlobDataContributor)
  scope: backupAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    condition: backupDeletes ? null : noDeleteCondition
    conditionVersion: backupDeletes ? null : '2.0'
  }
}

// Retention reads a backup container's time-based immutability policy (period, lock state) from ARM: the
// data plane shows only that there is one. Reader sees the account's configuration, not its keys or data.
resource functionBackupReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (backupDeletes) {
  name: guid(backupAccount.id, functionPrincipalId, roles.Reader)
  scope: backupAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.Reader)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionMetrics 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionPrincipalId, roles.MonitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.MonitoringMetricsPublisher)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionFactory 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (copyEngine == 'adf') {
  name: guid(factory.id, functionPrincipalId, roles.DataFactoryContributor)
  scope: factory
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.DataFactoryContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource factoryBackupBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (copyEngine == 'adf') {
  name: guid(backupAccount.id, factoryPrincipalId, roles.StorageBlobDataContributor)
  scope: backupAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataContributor)
    principalId: factoryPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The operators (README "Restoring", Roles, and "A person running the admin CLI"): status, verify and
// restore read the backups; restore writes only its audit record, so its write right is scoped to
// the records container; requeue-poison takes from the poison queue and sends to the request queue.
// Their source-account role is in source-rbac.bicep.
resource operatorBackupRead 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (operatorPrincipalId != '') {
  name: guid(backupAccount.id, operatorPrincipalId, roles.StorageBlobDataReader)
  scope: backupAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorRecords 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (operatorPrincipalId != '') {
  name: guid(recordsContainer.id, operatorPrincipalId, roles.StorageBlobDataContributor)
  scope: recordsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorPoisonQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (operatorPrincipalId != '') {
  name: guid(poisonQueue.id, operatorPrincipalId, roles.StorageQueueDataMessageProcessor)
  scope: poisonQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageQueueDataMessageProcessor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorRequestQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (operatorPrincipalId != '') {
  name: guid(requestQueue.id, operatorPrincipalId, roles.StorageQueueDataMessageSender)
  scope: requestQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageQueueDataMessageSender)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// The two accounts this deployment owns: the Functions host's account (which also holds the
// request queue, its poison queue and the Flex deployment container) and the backup account.
// Neither accepts shared keys or anonymous reads: every client, the host included, uses Entra ID.
param hostAccountName string
param backupAccountName string
param location string
param tags object

@description('The request queue; the trigger binding reads it from the par_queue_name app setting.')
param queueName string
@description('Container of the host account that Flex Consumption deploys the app package from.')
param deploymentContainerName string

@description('Replication of the backup account: geo-redundant by default, so backups survive the loss of the lake\'s region; Standard_GZRS where the region offers it.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param backupAccountSku string

@description('Days a deleted backup blob or container can be restored (blob and container soft delete).')
@minValue(1)
@maxValue(365)
param softDeleteDays int

@description('Backup containers created now (source container + suffix); the immutability policy applies to these. Others are created by the worker on first use, without a policy.')
param backupContainerNames array

@description('Days of time-based immutability on the listed backup containers; 0 = none. Needs the blob copy engine: the adf engine sets metadata after the copy, which immutability forbids.')
@minValue(0)
param immutabilityDays int

@description('The copy engine: the immutability policy is only applied with blob (see immutabilityDays).')
@allowed([
  'adf'
  'blob'
])
param copyEngine string

@description('The backup account\'s records container (deletion records, scan log, restore audits): the app\'s RECORDS_CONTAINER, left at its default, which this must equal. Created here so the operators\' role can be scoped to it.')
param recordsContainerName string = 'backup-records'

resource hostAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: hostAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }
}

resource hostBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: hostAccount
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: hostBlobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource hostQueueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: hostAccount
  name: 'default'
}

// Created here so neither the app nor the host needs the right to create queues at run time.
resource requestQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: hostQueueService
  name: queueName
}

// The Functions host's convention: `<queue>-poison` after maxDequeueCount failed tries.
resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: hostQueueService
  name: '${queueName}-poison'
}

resource backupAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: backupAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: backupAccountSku
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    accessTier: 'Hot'
  }
}

resource backupBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: backupAccount
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource backupContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for name in backupContainerNames: {
  parent: backupBlobService
  name: name
  properties: {
    publicAccess: 'None'
  }
}]

resource recordsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: backupBlobService
  name: recordsContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The containers that get a policy: all listed ones, or none (a loop over this list rather than
// `for ...: if (...)`, which pycep-parser, the offline test's parser, does not accept; the
// parentheses are for it too: it does not apply Bicep's operator precedence).
var immutableContainerNames = ((immutabilityDays > 0) && (copyEngine == 'blob')) ? backupContainerNames : []

// Unlocked on purpose: locking is irreversible and belongs to an operator's decision
// (az storage container immutability-policy lock), after the period has been checked.
resource immutabilityPolicies 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = [for (name, i) in immutableContainerNames: {
  parent: backupContainers[i]
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: immutabilityDays
    allowProtectedAppendWrites: false
  }
}]

output hostAccountName string = hostAccount.name
output hostBlobEndpoint string = hostAccount.properties.primaryEndpoints.blob
output hostQueueEndpoint string = hostAccount.properties.primaryEndpoints.queue
output deploymentContainerName string = deploymentContainer.name
output backupAccountName string = backupAccount.name
output backupBlobEndpoint string = backupAccount.properties.primaryEndpoints.blob
output queueName string = requestQueue.name
output recordsContainerName string = recordsContainer.name
output poisonQueueName string = poisonQueue.name

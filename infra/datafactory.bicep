// The Data Factory: system-assigned identity, linked services to the source and backup accounts
// through that identity (serviceEndpoint only, no key), the datasets and the pipelines. Their
// definitions are the JSON files under adf/ (what ADF Studio's git integration writes and what
// tests/test_adf_definition.py checks): one source of truth, read here with loadJsonContent.
param name string
param location string
param tags object
param sourceBlobEndpoint string
param backupBlobEndpoint string

@description('Function App the reconciliation pipeline calls (AzureFunctionActivity).')
param functionAppName string
@description('Name of the Azure Function linked service the reconciliation pipeline references.')
param functionLinkedServiceName string

var sourceLinkedService = loadJsonContent('../adf/linkedService/SourceBlobStorage.json')
var backupLinkedService = loadJsonContent('../adf/linkedService/BackupBlobStorage.json')
var sourceDataset = loadJsonContent('../adf/dataset/SourceBlobBinary.json')
var backupDataset = loadJsonContent('../adf/dataset/BackupBlobBinary.json')
var copyPipeline = loadJsonContent('../adf/pipeline/BlobBackupCopyPipeline.json')
var reconciliationPipeline = loadJsonContent('../adf/pipeline/ReconciliationLoopPipeline.json')

resource factory 'Microsoft.DataFactory/factories@2018-06-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    publicNetworkAccess: 'Enabled'
  }
}

// The files carry placeholder endpoints (`https://<source-account>...`): the real ones replace them.
resource sourceLinkedServiceResource 'Microsoft.DataFactory/factories/linkedservices@2018-06-01' = {
  parent: factory
  name: sourceLinkedService.name
  properties: union(sourceLinkedService.properties, {
    typeProperties: union(sourceLinkedService.properties.typeProperties, {
      serviceEndpoint: sourceBlobEndpoint
    })
  })
}

resource backupLinkedServiceResource 'Microsoft.DataFactory/factories/linkedservices@2018-06-01' = {
  parent: factory
  name: backupLinkedService.name
  properties: union(backupLinkedService.properties, {
    typeProperties: union(backupLinkedService.properties.typeProperties, {
      serviceEndpoint: backupBlobEndpoint
    })
  })
}

resource sourceDatasetResource 'Microsoft.DataFactory/factories/datasets@2018-06-01' = {
  parent: factory
  name: sourceDataset.name
  properties: sourceDataset.properties
  dependsOn: [
    sourceLinkedServiceResource
  ]
}

resource backupDatasetResource 'Microsoft.DataFactory/factories/datasets@2018-06-01' = {
  parent: factory
  name: backupDataset.name
  properties: backupDataset.properties
  dependsOn: [
    backupLinkedServiceResource
  ]
}

resource copyPipelineResource 'Microsoft.DataFactory/factories/pipelines@2018-06-01' = {
  parent: factory
  name: copyPipeline.name
  properties: copyPipeline.properties
  dependsOn: [
    sourceDatasetResource
    backupDatasetResource
  ]
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// The HTTP triggers have authLevel `function`: the activity sends the app's default host key,
// which ADF stores encrypted (SecureString); it is read at deployment and never output.
resource functionLinkedService 'Microsoft.DataFactory/factories/linkedservices@2018-06-01' = {
  parent: factory
  name: functionLinkedServiceName
  properties: {
    type: 'AzureFunction'
    description: 'The backup Function App, for the reconciliation loop (HttpSnapshotIncBackupStorageReconciliation).'
    typeProperties: {
      functionAppUrl: 'https://${functionApp.properties.defaultHostName}'
      functionKey: {
        type: 'SecureString'
        value: listKeys('${functionApp.id}/host/default', '2024-04-01').functionKeys.default
      }
    }
  }
}

resource reconciliationPipelineResource 'Microsoft.DataFactory/factories/pipelines@2018-06-01' = {
  parent: factory
  name: reconciliationPipeline.name
  properties: reconciliationPipeline.properties
  dependsOn: [
    functionLinkedService
  ]
}

output name string = factory.name
output principalId string = factory.identity.principalId
output copyPipelineName string = copyPipelineResource.name
output reconciliationPipelineName string = reconciliationPipelineResource.name

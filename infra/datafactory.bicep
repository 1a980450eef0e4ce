// The Data Factory: system-assigned identity, linked services to the source and backup accounts
// through that identity (serviceEndpoint only, no key), the datasets and the copy pipeline
// (the reconciliation loop is in reconciliation.bicep). Their
// definitions are the JSON files under adf/ (what ADF Studio's git integration writes and what
// tests/unit/test_adf_definition.py checks): one source of truth, read here with loadJsonContent.
param name string
param location string
param tags object
param sourceBlobEndpoint string
param backupBlobEndpoint string

var sourceLinkedService = loadJsonContent('../adf/linkedService/SourceBlobStorage.json')
var backupLinkedService = loadJsonContent('../adf/linkedService/BackupBlobStorage.json')
var sourceDataset = loadJsonContent('../adf/dataset/SourceBlobBinary.json')
var backupDataset = loadJsonContent('../adf/dataset/BackupBlobBinary.json')
var copyPipeline = loadJsonContent('../adf/pipeline/BlobBackupCopyPipeline.json')

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

output name string = factory.name
output principalId string = factory.identity.principalId
output copyPipelineName string = copyPipelineResource.name

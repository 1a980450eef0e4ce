// The reconciliation loop: adf/pipeline/ReconciliationLoopPipeline.json (an Until activity that
// calls HttpSnapshotIncBackupStorageReconciliation with the last continuation until it answers
// complete) and the Azure Function linked service it calls. A module of its own, deployed after
// the role assignments: reading the app's host key needs the host to reach its storage, which
// it does with the identity's role on the host account.
param factoryName string
@description('Function App the reconciliation pipeline calls (AzureFunctionActivity).')
param functionAppName string
@description('Name of the Azure Function linked service the reconciliation pipeline references.')
param functionLinkedServiceName string

var reconciliationPipeline = loadJsonContent('../adf/pipeline/ReconciliationLoopPipeline.json')
var functionLinkedServiceFile = loadJsonContent('../adf/linkedService/BackupFunctionApp.json')

resource factory 'Microsoft.DataFactory/factories@2018-06-01' existing = {
  name: factoryName
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
    description: functionLinkedServiceFile.properties.description
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

output pipelineName string = reconciliationPipelineResource.name

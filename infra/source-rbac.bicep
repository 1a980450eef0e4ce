// Role assignments on the existing source lake (deployed into the lake's own resource group;
// this deployment never creates or changes the account itself).
param sourceAccountName string
param functionPrincipalId string
param factoryPrincipalId string
@allowed([
  'adf'
  'blob'
])
param copyEngine string

var roles = loadJsonContent('roles.json')

resource sourceAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: sourceAccountName
}

resource functionSourceBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(sourceAccount.id, functionPrincipalId, roles.StorageBlobDataContributor)
  scope: sourceAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource factorySourceBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (copyEngine == 'adf') {
  name: guid(sourceAccount.id, factoryPrincipalId, roles.StorageBlobDataReader)
  scope: sourceAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataReader)
    principalId: factoryPrincipalId
    principalType: 'ServicePrincipal'
  }
}


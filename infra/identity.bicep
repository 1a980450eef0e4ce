// The user-assigned managed identity the Function App runs as: the host (AzureWebJobsStorage),
// the Flex deployment container, Application Insights ingestion and the app's own clients
// (DefaultAzureCredential with AZURE_CLIENT_ID) all use it, so its roles survive a re-created app.
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId

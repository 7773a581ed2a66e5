// NOT BUILT ON THE PROJECT'S MACHINES (no Gradle, no Android SDK). Used by build-aar.sh.
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.0"
}

android {
    namespace = "dev.trailhound"
    compileSdk = 35
    defaultConfig { minSdk = 24 }
    sourceSets["main"].apply {
        java.srcDirs("../src/main/kotlin", "src/main/kotlin", "../../generated/kotlin")
        jniLibs.srcDirs("jniLibs")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    implementation("androidx.lifecycle:lifecycle-process:2.8.7")
    implementation("androidx.work:work-runtime:2.10.0")
}
